#include "media/png.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "media/ffmpeg_util.h"

namespace linvideo::media {
namespace {

using internal::AvError;

// One png encoder context reused for a run of same-sized frames (PNG is intra-only).
class PngEncoder {
 public:
  absl::Status Open(int height, int width) {
    const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    if (codec == nullptr) return absl::InternalError("FFmpeg has no png encoder in this build");
    codec_.reset(avcodec_alloc_context3(codec));
    frame_.reset(av_frame_alloc());
    packet_.reset(av_packet_alloc());
    if (codec_ == nullptr || frame_ == nullptr || packet_ == nullptr) {
      return absl::ResourceExhaustedError("allocating png encoder");
    }
    codec_->width = width;
    codec_->height = height;
    codec_->pix_fmt = AV_PIX_FMT_RGB24;
    codec_->time_base = AVRational{1, 1};
    codec_->thread_count = 1;
    if (int err = avcodec_open2(codec_.get(), codec, nullptr); err < 0) {
      return AvError(err, "opening png encoder");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Encode(const uint8_t* rgb) {
    AVFrame* f = frame_.get();
    f->format = AV_PIX_FMT_RGB24;
    f->width = codec_->width;
    f->height = codec_->height;
    // Not reference counted: avcodec_send_frame copies it, so the caller's pixels stay untouched.
    f->data[0] = const_cast<uint8_t*>(rgb);
    f->linesize[0] = codec_->width * 3;
    f->pts = pts_++;
    int err = avcodec_send_frame(codec_.get(), f);
    f->data[0] = nullptr;
    if (err < 0) return AvError(err, "encoding png");
    err = avcodec_receive_packet(codec_.get(), packet_.get());
    if (err < 0) return AvError(err, "encoding png");
    std::string png(reinterpret_cast<const char*>(packet_->data), packet_->size);
    av_packet_unref(packet_.get());
    return png;
  }

 private:
  internal::CodecContextPtr codec_;
  internal::FramePtr frame_;
  internal::PacketPtr packet_;
  int64_t pts_ = 0;
};

absl::Status ValidateSheetOptions(const ContactSheetOptions& o) {
  if (o.columns < 1 || o.columns > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("columns ", o.columns, " is out of range: allowed 1..64"));
  }
  if (o.max_frames < 1 || o.max_frames > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_frames ", o.max_frames, " is out of range: allowed 1..1024"));
  }
  if (o.spacing < 0 || o.spacing > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("spacing ", o.spacing, " is out of range: allowed 0..64"));
  }
  if (o.tile_width != 0 && (o.tile_width < 8 || o.tile_width > kMaxDimension)) {
    return absl::InvalidArgumentError(absl::StrCat("tile_width ", o.tile_width,
                                                   " is out of range: allowed 0 (full size) or 8..",
                                                   kMaxDimension));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> EncodePng(const FrameView& frame) {
  internal::InitFfmpeg();
  LV_MEDIA_RETURN_IF_ERROR(ValidateFrameView(frame));
  if (frame.frames != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("EncodePng takes exactly 1 frame, got ", frame.frames,
                     ": allowed a one-frame view (FrameView::Single(i)), or use EncodePngFrames"));
  }
  PngEncoder encoder;
  LV_MEDIA_RETURN_IF_ERROR(encoder.Open(frame.height, frame.width));
  return encoder.Encode(frame.rgb);
}

absl::StatusOr<std::vector<std::string>> EncodePngFrames(const FrameView& frames) {
  internal::InitFfmpeg();
  LV_MEDIA_RETURN_IF_ERROR(ValidateFrameView(frames));
  PngEncoder encoder;
  LV_MEDIA_RETURN_IF_ERROR(encoder.Open(frames.height, frames.width));
  std::vector<std::string> pngs;
  pngs.reserve(frames.frames);
  for (int i = 0; i < frames.frames; ++i) {
    LV_MEDIA_ASSIGN_OR_RETURN(std::string png, encoder.Encode(frames.Frame(i)));
    pngs.push_back(std::move(png));
  }
  return pngs;
}

std::vector<int> SampleFrameIndices(int frames, int max_frames) {
  std::vector<int> indices;
  if (frames <= 0 || max_frames <= 0) return indices;
  const int n = std::min(frames, max_frames);
  indices.reserve(n);
  for (int i = 0; i < n; ++i) {
    // n <= frames, so consecutive rounded positions differ by at least one: strictly increasing.
    indices.push_back(
        n == 1 ? 0
               : static_cast<int>(std::lround(static_cast<double>(i) * (frames - 1) / (n - 1))));
  }
  return indices;
}

absl::StatusOr<std::string> ContactSheet(const FrameView& frames,
                                         const ContactSheetOptions& options) {
  internal::InitFfmpeg();
  LV_MEDIA_RETURN_IF_ERROR(ValidateFrameView(frames));
  LV_MEDIA_RETURN_IF_ERROR(ValidateSheetOptions(options));
  const std::vector<int> indices = SampleFrameIndices(frames.frames, options.max_frames);
  const int n = static_cast<int>(indices.size());
  const int columns = std::min(options.columns, n);
  const int rows = (n + columns - 1) / columns;
  const int tile_w = options.tile_width > 0 ? options.tile_width : frames.width;
  const int tile_h =
      options.tile_width > 0
          ? std::max(1, static_cast<int>(std::lround(static_cast<double>(frames.height) * tile_w /
                                                     frames.width)))
          : frames.height;
  const int64_t sheet_w = static_cast<int64_t>(columns) * tile_w + (columns - 1) * options.spacing;
  const int64_t sheet_h = static_cast<int64_t>(rows) * tile_h + (rows - 1) * options.spacing;
  if (sheet_w > kMaxContactSheetDimension || sheet_h > kMaxContactSheetDimension) {
    return absl::InvalidArgumentError(absl::StrCat(
        "contact sheet would be ", sheet_w, "x", sheet_h, ": allowed up to ",
        kMaxContactSheetDimension, " per side; lower columns/max_frames or set tile_width"));
  }

  std::vector<uint8_t> sheet(static_cast<size_t>(sheet_w) * sheet_h * 3);
  for (size_t p = 0; p < sheet.size(); p += 3) std::memcpy(&sheet[p], options.background, 3);

  // Scaling goes through aligned buffers (see internal::AlignedRgb): swscale reads past the end of
  // tightly packed input and may write past the end of tightly packed output.
  internal::SwsPtr sws;
  internal::AlignedRgb staged, tile;
  if (tile_w != frames.width) {
    sws.reset(sws_getContext(frames.width, frames.height, AV_PIX_FMT_RGB24, tile_w, tile_h,
                             AV_PIX_FMT_RGB24, SWS_AREA | SWS_ACCURATE_RND, nullptr, nullptr,
                             nullptr));
    if (sws == nullptr) return absl::InternalError("creating the tile scaler");
    if (!staged.Allocate(frames.height, frames.width) || !tile.Allocate(tile_h, tile_w)) {
      return absl::ResourceExhaustedError("allocating tiles");
    }
  }
  const size_t sheet_row = static_cast<size_t>(sheet_w) * 3;
  const size_t tile_row = static_cast<size_t>(tile_w) * 3;
  for (int k = 0; k < n; ++k) {
    const uint8_t* src = frames.Frame(indices[k]);
    size_t src_stride = tile_row;
    if (sws != nullptr) {
      staged.CopyFrom(src, frames.height, frames.width);
      // Plane arrays of 4: sws_scale reads all four entries.
      const uint8_t* in[4] = {staged.data()};
      const int in_stride[4] = {staged.stride()};
      uint8_t* out[4] = {tile.data()};
      const int out_stride[4] = {tile.stride()};
      sws_scale(sws.get(), in, in_stride, 0, frames.height, out, out_stride);
      src = tile.data();
      src_stride = tile.stride();
    }
    const size_t x0 = static_cast<size_t>(k % columns) * (tile_w + options.spacing);
    const size_t y0 = static_cast<size_t>(k / columns) * (tile_h + options.spacing);
    for (int y = 0; y < tile_h; ++y) {
      std::memcpy(&sheet[(y0 + y) * sheet_row + x0 * 3], src + y * src_stride, tile_row);
    }
  }
  return EncodePng(
      FrameView{sheet.data(), 1, static_cast<int>(sheet_h), static_cast<int>(sheet_w)});
}

}  // namespace linvideo::media
