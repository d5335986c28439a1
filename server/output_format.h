#pragma once
// What a finished request is encoded into: the container (MP4, WebM) or PNG frames, the frame
// rate, and the MIME type of the result. Resolve owns the defaults and limits of these fields;
// Encode turns decoded frames into the result. Pure functions; thread-safe.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "media/frames.h"

namespace linvideo::server {

enum class OutputKind { kMp4, kWebm, kPngFrames };

inline constexpr int kDefaultFps = 16;
inline constexpr int kMaxFps = 60;

struct OutputFormat {
  OutputKind kind = OutputKind::kMp4;
  int fps = 0;  // 0: kDefaultFps
};

// The encoded result: one blob (a video) or one PNG per frame.
struct EncodedOutput {
  std::vector<std::string> blobs;
  std::string mime;
  int64_t bytes() const;
};

// Fills in the default fps and checks it (INVALID_ARGUMENT: 1..60, 0 for the default). In a build
// without FFmpeg (media::VideoCodecsAvailable() false) MP4 and WebM are INVALID_ARGUMENT naming png
// frames, so such a request is refused at submission, never after its compute.
absl::StatusOr<OutputFormat> ResolveOutputFormat(const OutputFormat& format);
// The same with the build's answer given (tests check both builds' behaviour in either build).
absl::StatusOr<OutputFormat> ResolveOutputFormat(const OutputFormat& format,
                                                 bool video_codecs_available);
std::string MimeType(OutputKind kind);
// Encodes `frames` (format already resolved); PNG frames on up to `threads` threads (MP4 and WebM:
// FFmpeg's encoder threads).
absl::StatusOr<EncodedOutput> Encode(const media::VideoFrames& frames, const OutputFormat& format,
                                     int threads = 1);

// limits.encode_threads resolved: `configured` if > 0; 0 (auto) is 1 on the CPU (the DiT's LibTorch
// threads use every core) and, on a CUDA device (the CPU mostly waits for the GPU), half of `cores`
// (core::AvailableCores: affinity and cgroup quota) shared by the `workers` that may encode at
// once, between 1 and 8.
int ResolveEncodeThreads(int configured, const std::string& device, int cores, int workers);

}  // namespace linvideo::server
