#include "media/frames.h"

#include "absl/strings/str_cat.h"

namespace linvideo::media {

absl::Status ValidateFrameView(const FrameView& view) {
  if (view.frames < 1 || view.frames > kMaxFrames) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame count ", view.frames, " is out of range: allowed 1..", kMaxFrames));
  }
  if (view.height < 1 || view.height > kMaxDimension || view.width < 1 ||
      view.width > kMaxDimension) {
    return absl::InvalidArgumentError(absl::StrCat("frame size ", view.width, "x", view.height,
                                                   " (width x height) is out of range: allowed 1..",
                                                   kMaxDimension, " for each"));
  }
  if (view.rgb == nullptr) {
    return absl::InvalidArgumentError(
        "frame pixels are null: expected frames*height*width*3 RGB24 bytes");
  }
  return absl::OkStatus();
}

absl::Status ValidateVideoFrames(const VideoFrames& frames) {
  const FrameView view = frames.View();
  if (view.frames >= 1 && view.height >= 1 && view.width >= 1 && frames.rgb.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame pixels are empty: expected frames*height*width*3 = ", view.TotalBytes(), " bytes"));
  }
  if (absl::Status s = ValidateFrameView(view); !s.ok()) return s;
  if (frames.rgb.size() != view.TotalBytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame pixels hold ", frames.rgb.size(), " bytes but frames*height*width*3 = ", view.frames,
        "*", view.height, "*", view.width, "*3 = ", view.TotalBytes()));
  }
  return absl::OkStatus();
}

}  // namespace linvideo::media
