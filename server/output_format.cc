#include "server/output_format.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "media/png.h"
#include "media/video_encoder.h"

namespace linvideo::server {

int64_t EncodedOutput::bytes() const {
  int64_t n = 0;
  for (const std::string& b : blobs) n += static_cast<int64_t>(b.size());
  return n;
}

absl::StatusOr<OutputFormat> ResolveOutputFormat(const OutputFormat& format) {
  return ResolveOutputFormat(format, media::VideoCodecsAvailable());
}

absl::StatusOr<OutputFormat> ResolveOutputFormat(const OutputFormat& format,
                                                 bool video_codecs_available) {
  OutputFormat f = format;
  if (f.fps == 0) f.fps = kDefaultFps;
  if (f.fps < 1 || f.fps > kMaxFps) {
    return absl::InvalidArgumentError(absl::StrCat("fps ", format.fps, " is not allowed; use 1..",
                                                   kMaxFps, " (0: the default, ", kDefaultFps,
                                                   ")"));
  }
  if (f.kind != OutputKind::kPngFrames && !video_codecs_available) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output format ", f.kind == OutputKind::kWebm ? "webm" : "mp4",
        " is not available: this server was built without FFmpeg (LINVIDEO_WITH_FFMPEG=OFF); "
        "allowed: png frames (OUTPUT_FORMAT_PNG_FRAMES, `linvideo --format=png`)"));
  }
  return f;
}

std::string MimeType(OutputKind kind) {
  if (kind == OutputKind::kPngFrames) return "image/png";
  return std::string(media::ContainerMimeType(kind == OutputKind::kWebm ? media::Container::kWebm
                                                                        : media::Container::kMp4));
}

absl::StatusOr<EncodedOutput> Encode(const media::VideoFrames& frames, const OutputFormat& format,
                                     int threads) {
  EncodedOutput out;
  out.mime = MimeType(format.kind);
  if (format.kind == OutputKind::kPngFrames) {
    auto pngs = media::EncodePngFrames(frames.View(), threads);
    if (!pngs.ok()) return pngs.status();
    out.blobs = std::move(*pngs);
    return out;
  }
  media::EncodeOptions eo;
  eo.container =
      format.kind == OutputKind::kWebm ? media::Container::kWebm : media::Container::kMp4;
  eo.fps = format.fps;
  auto video = media::EncodeVideo(frames.View(), eo);
  if (!video.ok()) return video.status();
  out.blobs.push_back(std::move(*video));
  return out;
}

int ResolveEncodeThreads(int configured, const std::string& device, int cores, int workers) {
  if (configured > 0) return configured;
  if (device.rfind("cuda", 0) != 0) return 1;
  return std::clamp(cores / 2 / std::max(1, workers), 1, 8);
}

}  // namespace linvideo::server
