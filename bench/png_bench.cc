// PNG frames on one thread vs several (media::EncodePngFrames(view, threads), the server's
// limits.encode_threads), side by side in one run, on smooth frames (tests/media/test_frames.h's
// MovingGradient, like a generated video's backgrounds) and on noise (a random-weight model's
// output, the GPU check's server stage). Checks the bytes are the same for every thread count.
//
// Usage: linvideo-png-bench [--frames=81] [--height=480] [--width=832] [--threads=1,2,8] [--reps=3]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "media/png.h"
#include "tests/media/test_frames.h"

namespace {

using linvideo::media::VideoFrames;

VideoFrames Noise(int frames, int height, int width) {
  VideoFrames v{frames, height, width, {}};
  v.rgb.resize(static_cast<size_t>(frames) * height * width * 3);
  std::mt19937 gen(7);
  for (uint8_t& b : v.rgb) b = static_cast<uint8_t>(gen());
  return v;
}

// Best of `reps` wall times of one EncodePngFrames call, in seconds; `out` gets its PNGs.
double Time(const VideoFrames& v, int threads, int reps, std::vector<std::string>& out) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    auto pngs = linvideo::media::EncodePngFrames(v.View(), threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!pngs.ok()) {
      std::fprintf(stderr, "EncodePngFrames: %s\n", std::string(pngs.status().message()).c_str());
      std::exit(1);
    }
    best = std::min(best, s);
    out = std::move(*pngs);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int frames = 81, height = 480, width = 832, reps = 3;
  std::vector<int> threads = {1, 2, 8};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    const std::string key = a.substr(0, eq), val = eq == std::string::npos ? "" : a.substr(eq + 1);
    bool ok = eq != std::string::npos;
    if (key == "--frames") {
      ok = ok && absl::SimpleAtoi(val, &frames) && frames > 0;
    } else if (key == "--height") {
      ok = ok && absl::SimpleAtoi(val, &height) && height > 0;
    } else if (key == "--width") {
      ok = ok && absl::SimpleAtoi(val, &width) && width > 0;
    } else if (key == "--reps") {
      ok = ok && absl::SimpleAtoi(val, &reps) && reps > 0;
    } else if (key == "--threads") {
      threads.clear();
      for (absl::string_view t : absl::StrSplit(val, ',')) {
        int n = 0;
        ok = ok && absl::SimpleAtoi(t, &n) && n > 0;
        threads.push_back(n);
      }
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "bad flag %s (allowed: --frames --height --width --reps (positive integers), "
                   "--threads=N,N,... (each >= 1))\n",
                   a.c_str());
      return 2;
    }
  }
  std::printf("linvideo-png-bench: %d frames of %dx%d, best of %d\n", frames, width, height, reps);
  std::printf("%-8s %8s %10s %12s %10s %s\n", "content", "threads", "s/video", "ms/frame", "vs 1",
              "bytes");
  for (const char* content : {"smooth", "noise"}) {
    const VideoFrames v = std::string(content) == "smooth"
                              ? linvideo::media::testing::MovingGradient(frames, height, width)
                              : Noise(frames, height, width);
    std::vector<std::string> base;
    Time(v, 2, 1, base);  // warm-up (page faults, caches, the allocator), not measured
    const double one = Time(v, 1, reps, base);
    size_t bytes = 0;
    for (const auto& p : base) bytes += p.size();
    for (int t : threads) {
      std::vector<std::string> pngs;
      const double s = t == 1 ? one : Time(v, t, reps, pngs);
      if (t != 1 && pngs != base) {
        std::fprintf(stderr, "%s, %d threads: the PNGs differ from one thread's\n", content, t);
        return 1;
      }
      std::printf("%-8s %8d %10.3f %12.2f %9.2fx %zu%s\n", content, t, s, 1e3 * s / frames, one / s,
                  bytes, t == 1 ? "" : " (same bytes)");
    }
  }
  return 0;
}
