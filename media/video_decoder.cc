#include "media/video_decoder.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "media/ffmpeg_util.h"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace linvideo::media {
namespace {

using internal::AvError;

struct InputContextDeleter {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
using InputContextPtr = std::unique_ptr<AVFormatContext, InputContextDeleter>;

class Decoder {
 public:
  Decoder(std::string_view bytes, const DecodeOptions& options)
      : bytes_(bytes), options_(options) {}

  absl::StatusOr<DecodedVideo> Run() {
    LV_MEDIA_RETURN_IF_ERROR(Open());
    while (true) {
      int err = av_read_frame(demuxer_.get(), packet_.get());
      if (err == AVERROR_EOF) break;
      if (err < 0) return AvError(err, "reading packet", /*input_error=*/true);
      const bool ours = packet_->stream_index == stream_->index;
      if (ours) err = avcodec_send_packet(codec_.get(), packet_.get());
      av_packet_unref(packet_.get());
      if (ours && err < 0 && err != AVERROR(EAGAIN)) {
        return AvError(err, "decoding packet", /*input_error=*/true);
      }
      LV_MEDIA_RETURN_IF_ERROR(ReceiveFrames());
    }
    if (int err = avcodec_send_packet(codec_.get(), nullptr); err < 0) {
      return AvError(err, "flushing decoder");
    }
    LV_MEDIA_RETURN_IF_ERROR(ReceiveFrames());
    if (out_.frames.frames == 0) return absl::InvalidArgumentError("the video has no frames");
    out_.width = out_.frames.width;
    out_.height = out_.frames.height;
    out_.frame_count = out_.frames.frames;
    return std::move(out_);
  }

 private:
  absl::Status Open() {
    io_ =
        internal::OpenMemoryReader(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size());
    AVFormatContext* raw = avformat_alloc_context();
    if (io_ == nullptr || raw == nullptr) {
      avformat_free_context(raw);
      return absl::ResourceExhaustedError("allocating demuxer");
    }
    raw->pb = io_.get();
    raw->flags |= AVFMT_FLAG_CUSTOM_IO;
    // On failure avformat_open_input frees `raw` itself.
    if (int err = avformat_open_input(&raw, nullptr, nullptr, nullptr); err < 0) {
      return AvError(err, "opening input (not a video or image FFmpeg can read?)",
                     /*input_error=*/true);
    }
    demuxer_.reset(raw);
    if (int err = avformat_find_stream_info(raw, nullptr); err < 0) {
      return AvError(err, "reading stream info", /*input_error=*/true);
    }
    const AVCodec* codec = nullptr;
    const int index = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (index < 0) return AvError(index, "finding a video stream", /*input_error=*/true);
    stream_ = raw->streams[index];
    codec_.reset(avcodec_alloc_context3(codec));
    if (codec_ == nullptr) return absl::ResourceExhaustedError("allocating decoder");
    if (int err = avcodec_parameters_to_context(codec_.get(), stream_->codecpar); err < 0) {
      return AvError(err, "copying codec parameters");
    }
    codec_->thread_count = options_.threads;
    if (int err = avcodec_open2(codec_.get(), codec, nullptr); err < 0) {
      return AvError(err, "opening decoder", /*input_error=*/true);
    }
    frame_.reset(av_frame_alloc());
    packet_.reset(av_packet_alloc());
    if (frame_ == nullptr || packet_ == nullptr) {
      return absl::ResourceExhaustedError("allocating frame");
    }
    const AVRational rate =
        stream_->avg_frame_rate.num > 0 ? stream_->avg_frame_rate : stream_->r_frame_rate;
    out_.fps = rate.num > 0 && rate.den > 0 ? av_q2d(rate) : 0.0;
    out_.codec_name = avcodec_get_name(stream_->codecpar->codec_id);
    out_.format_name = raw->iformat->name;
    return absl::OkStatus();
  }

  absl::Status ReceiveFrames() {
    while (true) {
      int err = avcodec_receive_frame(codec_.get(), frame_.get());
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return absl::OkStatus();
      if (err < 0) return AvError(err, "decoding frame", /*input_error=*/true);
      absl::Status s = AppendFrame(*frame_);
      av_frame_unref(frame_.get());
      LV_MEDIA_RETURN_IF_ERROR(s);
    }
  }

  absl::Status AppendFrame(const AVFrame& f) {
    VideoFrames& v = out_.frames;
    if (v.frames == 0) {
      v.width = f.width;
      v.height = f.height;
    } else if (f.width != v.width || f.height != v.height) {
      return absl::InvalidArgumentError(absl::StrCat("frame ", v.frames, " is ", f.width, "x",
                                                     f.height, " but the first frame is ", v.width,
                                                     "x", v.height));
    }
    if (v.frames >= options_.max_frames) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the video has more than max_frames = ", options_.max_frames, " frames"));
    }
    const size_t row = static_cast<size_t>(v.width) * 3;
    const size_t offset = v.rgb.size();
    v.rgb.resize(offset + row * v.height);
    uint8_t* dst = v.rgb.data() + offset;
    ++v.frames;
    const auto format = static_cast<AVPixelFormat>(f.format);
    if (format == AV_PIX_FMT_RGB24) {  // PNG and friends: copy, bit-exact
      for (int y = 0; y < v.height; ++y)
        std::memcpy(dst + y * row, f.data[0] + y * f.linesize[0], row);
      return absl::OkStatus();
    }
    sws_ = internal::SwsPtr(sws_getCachedContext(
        sws_.release(), f.width, f.height, format, v.width, v.height, AV_PIX_FMT_RGB24,
        SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, nullptr, nullptr, nullptr));
    if (sws_ == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot convert pixel format ", av_get_pix_fmt_name(format), " to rgb24"));
    }
    const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
    if (desc != nullptr && (desc->flags & AV_PIX_FMT_FLAG_RGB) == 0) {
      // The sws colorspace constants share the AVColorSpace numbering; unspecified -> BT.601.
      const int space = f.colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : f.colorspace;
      const int full_range = f.color_range == AVCOL_RANGE_JPEG ? 1 : 0;
      sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(space), full_range,
                               sws_getCoefficients(SWS_CS_DEFAULT), /*dstRange=*/1, 0, 1 << 16,
                               1 << 16);
    }
    // Convert into an aligned buffer with slack (swscale's SIMD may store past the last pixel),
    // then copy the rows out.
    if (converted_.data() == nullptr && !converted_.Allocate(v.height, v.width)) {
      return absl::ResourceExhaustedError("allocating frame");
    }
    // Plane arrays of 4: sws_scale reads all four entries.
    uint8_t* dst_planes[4] = {converted_.data()};
    const int dst_stride[4] = {converted_.stride()};
    sws_scale(sws_.get(), f.data, f.linesize, 0, f.height, dst_planes, dst_stride);
    for (int y = 0; y < v.height; ++y) {
      std::memcpy(dst + y * row, converted_.data() + static_cast<size_t>(y) * converted_.stride(),
                  row);
    }
    return absl::OkStatus();
  }

  std::string_view bytes_;
  const DecodeOptions& options_;
  internal::AvioPtr io_;
  InputContextPtr demuxer_;  // destroyed before io_
  AVStream* stream_ = nullptr;
  internal::CodecContextPtr codec_;
  internal::FramePtr frame_;
  internal::PacketPtr packet_;
  internal::SwsPtr sws_;
  internal::AlignedRgb converted_;
  DecodedVideo out_;
};

}  // namespace

absl::StatusOr<DecodedVideo> DecodeVideo(std::string_view bytes, const DecodeOptions& options) {
  internal::InitFfmpeg();
  if (bytes.empty()) return absl::InvalidArgumentError("no bytes to decode: got an empty input");
  if (options.max_frames < 1 || options.threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("DecodeOptions: max_frames ", options.max_frames,
                                                   " (allowed >= 1), threads ", options.threads,
                                                   " (allowed 0 = auto, or >= 1)"));
  }
  return Decoder(bytes, options).Run();
}

}  // namespace linvideo::media
