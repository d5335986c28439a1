// The FFmpeg-free half of media/video_encoder.h: container names and the validation of
// EncodeOptions, compiled in every build (a server built without FFmpeg still names and refuses
// containers with the same words).
#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "media/video_encoder.h"

namespace linvideo::media {
namespace {

constexpr std::array<const char*, 9> kX264Presets = {
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"};

}  // namespace

absl::StatusOr<Container> ParseContainer(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(std::string(name));
  if (lower == "mp4") return Container::kMp4;
  if (lower == "webm") return Container::kWebm;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown container '", std::string(name), "': allowed mp4 (H.264), webm (VP9)"));
}

std::string_view ContainerName(Container container) {
  return container == Container::kMp4 ? "mp4" : "webm";
}

std::string_view ContainerMimeType(Container container) {
  return container == Container::kMp4 ? "video/mp4" : "video/webm";
}

std::string_view ContainerCodecName(Container container) {
  return container == Container::kMp4 ? "h264" : "vp9";
}

absl::Status ValidateEncodeOptions(const EncodeOptions& o) {
  if (o.container != Container::kMp4 && o.container != Container::kWebm) {
    return absl::InvalidArgumentError("container must be kMp4 or kWebm");
  }
  if (o.fps < kMinFps || o.fps > kMaxFps) {
    return absl::InvalidArgumentError(
        absl::StrCat("fps ", o.fps, " is out of range: allowed ", kMinFps, "..", kMaxFps));
  }
  const int max_crf = o.container == Container::kMp4 ? 51 : 63;
  if (o.crf < -1 || o.crf > max_crf) {
    return absl::InvalidArgumentError(absl::StrCat("crf ", o.crf, " is out of range for ",
                                                   std::string(ContainerCodecName(o.container)),
                                                   ": allowed -1 (default) or 0..", max_crf));
  }
  if (std::find_if(kX264Presets.begin(), kX264Presets.end(),
                   [&](const char* p) { return o.x264_preset == p; }) == kX264Presets.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown x264_preset '", o.x264_preset, "': allowed ", absl::StrJoin(kX264Presets, ", ")));
  }
  if (o.vp9_speed < 0 || o.vp9_speed > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("vp9_speed ", o.vp9_speed, " is out of range: allowed 0..8"));
  }
  if (o.threads < 1 || o.threads > kMaxEncoderThreads) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads ", o.threads, " is out of range: allowed 1..", kMaxEncoderThreads));
  }
  if (o.keyframe_interval < 0 || o.keyframe_interval > 1000) {
    return absl::InvalidArgumentError(absl::StrCat("keyframe_interval ", o.keyframe_interval,
                                                   " is out of range: allowed 0 (default)..1000"));
  }
  if (o.odd_size != OddSizePolicy::kPad && o.odd_size != OddSizePolicy::kError) {
    return absl::InvalidArgumentError("odd_size must be kPad or kError");
  }
  return absl::OkStatus();
}

}  // namespace linvideo::media
