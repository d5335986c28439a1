#pragma once
// In-memory video encoding of RGB24 frames with FFmpeg: MP4/H.264 (libx264) and WebM/VP9
// (libvpx-vp9), both yuv420p, tagged BT.709 limited range. No LibTorch, no files: the result is
// the complete container as bytes, ready to stream to a client or write with SaveBytes().
//
// Thread safety: EncodeVideo keeps no global mutable state (the FFmpeg log level is set once);
// any number of threads may encode at the same time. With the default threads = 1 the output is
// bit-identical for identical inputs and options (the muxers run in bitexact mode: no random
// WebM segment UID, no version strings), whichever thread runs it.

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "media/frames.h"

namespace linvideo::media {

enum class Container {
  kMp4,   // MP4 + H.264 (libx264, High profile), 'moov' first (movflags +faststart)
  kWebm,  // WebM + VP9 (libvpx-vp9, profile 0)
};

// "mp4" / "webm" (case-insensitive) -> Container; INVALID_ARGUMENT listing both otherwise.
absl::StatusOr<Container> ParseContainer(std::string_view name);
std::string_view ContainerName(Container container);       // "mp4", "webm"
std::string_view ContainerMimeType(Container container);   // "video/mp4", "video/webm"
std::string_view ContainerCodecName(Container container);  // "h264", "vp9" (FFmpeg codec names)

// yuv420p stores chroma at half resolution, so the encoded width and height must be even.
enum class OddSizePolicy {
  kPad,    // pad to even by repeating the last column / row: a 63x47 input encodes as 64x48
  kError,  // reject odd sizes with INVALID_ARGUMENT
};

inline constexpr int kMinFps = 1;
inline constexpr int kMaxFps = 240;
inline constexpr int kMaxEncoderThreads = 64;

struct EncodeOptions {
  Container container = Container::kMp4;
  int fps = 16;  // Wan 2.1 generates 16 fps; allowed kMinFps..kMaxFps
  // Constant-quality factor; lower = better. -1 = default (H.264: 23, VP9: 32).
  // Allowed: H.264 0..51, VP9 0..63.
  int crf = -1;
  // libx264 speed/size trade-off: ultrafast, superfast, veryfast, faster, fast, medium, slow,
  // slower, veryslow (placebo excluded).
  std::string x264_preset = "veryfast";
  // libvpx-vp9 speed (cpu-used, "good" deadline): 0 (slowest, best) .. 8 (fastest).
  int vp9_speed = 5;
  // Encoder threads, 1..kMaxEncoderThreads. 1 (default) is deterministic and suits a pool of
  // encoding workers; more threads speed up one large encode but may change the bytes.
  int threads = 1;
  // Frames between keyframes; 0 = codec default. Allowed 0..1000.
  int keyframe_interval = 0;
  OddSizePolicy odd_size = OddSizePolicy::kPad;
};

// INVALID_ARGUMENT, naming the field and its allowed values, for any out-of-range option.
absl::Status ValidateEncodeOptions(const EncodeOptions& options);

// True when this build has FFmpeg (LINVIDEO_WITH_FFMPEG=ON, the default). A build without it
// (e.g. a GPU machine that carries no FFmpeg) keeps PNG frames and contact sheets (media/png.h)
// but EncodeVideo and DecodeVideo return FAILED_PRECONDITION saying so.
bool VideoCodecsAvailable();

// Encodes all `frames` (each shown for 1/fps s; the last frame is kept) into one MP4 or WebM file
// held in memory. INVALID_ARGUMENT for a bad view (see ValidateFrameView) or options; INTERNAL if
// FFmpeg fails (e.g. the encoder is missing from this FFmpeg build).
absl::StatusOr<std::string> EncodeVideo(const FrameView& frames, const EncodeOptions& options = {});

}  // namespace linvideo::media
