// `linvideo bench`: N concurrent clients, each running Generate calls back to back for T seconds
// or until M requests have been issued in total; prints throughput, latency percentiles and errors
// by status, and where the server spent each request's time (the mean of its per-request stats:
// queue, start = text encoding and initial latents, DiT steps, VAE decode, media encode). --mixed
// cycles through three shapes to exercise bucketing.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_format.h"
#include "client/cli.h"

namespace linvideo::client {

int CmdBench(const Args& a) {
  Client c = Connect(a);
  v1::GenerateRequest base;
  std::string error;
  if (!BuildRequest(a, &base, &error)) return std::cerr << error << "\n", 64;
  if (base.prompt().empty()) base.set_prompt("a red ball bouncing on a blue floor");
  const int clients = static_cast<int>(a.Int("clients", 1));
  const double seconds = a.Num("seconds", 0);
  const int requests = static_cast<int>(a.Int("requests", 0));
  if (clients < 1 || (seconds <= 0 && requests <= 0)) {
    std::cerr << "bench needs --clients>=1 and --seconds=T or --requests=M\n";
    return 64;
  }
  const bool mixed = a.Has("mixed");
  // --out_dir=DIR keeps every video as DIR/seed-<seed>.<ext> so runs can be checked afterwards.
  const std::string out_dir = a.Get("out_dir");
  if (!out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) {
      std::cerr << "bench: cannot create --out_dir " << out_dir << ": " << ec.message() << "\n";
      return 64;
    }
  }
  std::atomic<int> issued{0};
  std::mutex mu;
  std::vector<double> latencies;
  std::vector<v1::Stats> server_stats;
  std::map<std::string, int> errors;
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      while (true) {
        if (seconds > 0 && std::chrono::steady_clock::now() >= end) break;
        const int i = issued++;
        if (requests > 0 && i >= requests) break;
        v1::GenerateRequest req = base;
        req.set_seed(base.seed() + i);
        if (mixed) {
          const int sizes[] = {0, 16, 32};
          req.set_width((base.width() > 0 ? base.width() : 32) + sizes[i % 3]);
        }
        const auto t0 = std::chrono::steady_clock::now();
        const std::string out =
            out_dir.empty()
                ? ""
                : absl::StrFormat("%s/seed-%d.%s", out_dir, req.seed(),
                                  req.format() == v1::OUTPUT_FORMAT_WEBM         ? "webm"
                                  : req.format() == v1::OUTPUT_FORMAT_PNG_FRAMES ? "png"
                                                                                 : "mp4");
        v1::Stats stats;
        grpc::Status st = RunGenerate(c, req, out, false, nullptr, &stats);
        const double dt =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::lock_guard<std::mutex> lock(mu);
        if (st.ok()) {
          latencies.push_back(dt);
          server_stats.push_back(stats);
        } else {
          ++errors[absl::StrFormat("%d %s", st.error_code(), st.error_message().substr(0, 60))];
        }
      }
      (void)t;
    });
  }
  for (auto& th : threads) th.join();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) {
    if (latencies.empty()) return 0.0;
    return latencies[std::min(latencies.size() - 1,
                              static_cast<size_t>(p * (latencies.size() - 1) + 0.5))];
  };
  int error_count = 0;
  for (const auto& [k, v] : errors) error_count += v;
  std::printf(
      "bench: clients=%d ok=%zu errors=%d wall=%.2fs throughput=%.3f req/s latency p50=%.3fs "
      "p90=%.3fs "
      "p99=%.3fs max=%.3fs\n",
      clients, latencies.size(), error_count, wall, latencies.size() / wall, pct(0.5), pct(0.9),
      pct(0.99), latencies.empty() ? 0.0 : latencies.back());
  if (!server_stats.empty()) {
    double queue = 0, start_s = 0, dit = 0, decode = 0, encode = 0, total = 0;
    for (const v1::Stats& s : server_stats) {
      queue += s.queue_seconds();
      start_s += s.start_seconds();
      dit += s.compute_seconds() - s.start_seconds();
      decode += s.decode_seconds();
      encode += s.encode_seconds();
      total += s.total_seconds();
    }
    const double n = static_cast<double>(server_stats.size());
    std::printf(
        "server time per request (mean of %zu): queue=%.3fs start(text)=%.3fs dit=%.3fs "
        "decode=%.3fs encode=%.3fs total=%.3fs (model %s, %d steps)\n",
        server_stats.size(), queue / n, start_s / n, dit / n, decode / n, encode / n, total / n,
        server_stats.back().model().c_str(), server_stats.back().steps());
  }
  for (const auto& [k, v] : errors) std::printf("  error %s: %d\n", k.c_str(), v);
  return error_count == 0 ? 0 : 1;
}

}  // namespace linvideo::client
