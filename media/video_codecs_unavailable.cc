// EncodeVideo and DecodeVideo of a build without FFmpeg (LINVIDEO_WITH_FFMPEG=OFF): both refuse
// with FAILED_PRECONDITION naming what still works, so callers need no #ifdefs and a request for
// MP4/WebM gets a clear answer instead of a link error at build time.
#include <string>

#include "absl/strings/str_cat.h"
#include "media/frames.h"
#include "media/video_decoder.h"
#include "media/video_encoder.h"

namespace linvideo::media {
namespace {

absl::Status Unavailable(const std::string& what) {
  return absl::FailedPreconditionError(
      absl::StrCat(what,
                   " needs FFmpeg, and this linvideo was built without it "
                   "(LINVIDEO_WITH_FFMPEG=OFF); PNG frames and contact sheets work: ask for the "
                   "png frames output format, or rebuild with FFmpeg (libavcodec, libavformat, "
                   "libavutil, libswscale)"));
}

}  // namespace

bool VideoCodecsAvailable() { return false; }

absl::StatusOr<std::string> EncodeVideo(const FrameView& frames, const EncodeOptions& options) {
  if (absl::Status s = ValidateFrameView(frames); !s.ok()) return s;
  if (absl::Status s = ValidateEncodeOptions(options); !s.ok()) return s;
  return Unavailable("encoding " + std::string(ContainerName(options.container)));
}

absl::StatusOr<DecodedVideo> DecodeVideo(std::string_view, const DecodeOptions&) {
  return Unavailable("decoding video");
}

}  // namespace linvideo::media
