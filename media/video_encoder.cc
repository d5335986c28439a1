#include "media/video_encoder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "media/ffmpeg_util.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace linvideo::media {
namespace {

using internal::AvError;

constexpr int kDefaultCrfH264 = 23;
constexpr int kDefaultCrfVp9 = 32;

struct FormatContextDeleter {
  void operator()(AVFormatContext* f) const { avformat_free_context(f); }
};
using FormatContextPtr = std::unique_ptr<AVFormatContext, FormatContextDeleter>;

// movenc's faststart pass re-opens the output by URL for reading (s->io_open) to move 'moov'
// before 'mdat'. With custom IO there is no file, so hand it a reader over the same memory.
int OpenMemoryForFaststart(AVFormatContext* s, AVIOContext** pb, const char* /*url*/, int flags,
                           AVDictionary** /*options*/) {
  if ((flags & AVIO_FLAG_WRITE) != 0) return AVERROR(EPERM);
  *pb = static_cast<internal::MemoryFile*>(s->opaque)->OpenReader().release();
  return *pb != nullptr ? 0 : AVERROR(ENOMEM);
}

int CloseMemoryForFaststart(AVFormatContext* /*s*/, AVIOContext* pb) {
  internal::AvioDeleter()(pb);
  return 0;
}

class Encoder {
 public:
  Encoder(const FrameView& frames, const EncodeOptions& options)
      : frames_(frames), options_(options) {}

  absl::StatusOr<std::string> Run() {
    width_ = frames_.width + (frames_.width & 1);
    height_ = frames_.height + (frames_.height & 1);
    LV_MEDIA_RETURN_IF_ERROR(OpenEncoder());
    LV_MEDIA_RETURN_IF_ERROR(OpenMuxer());
    LV_MEDIA_RETURN_IF_ERROR(EncodeFrames());
    LV_MEDIA_RETURN_IF_ERROR(Drain(/*flush=*/true));
    if (int err = av_write_trailer(muxer_.get()); err < 0) return AvError(err, "finishing file");
    // The writer's buffer must reach memory before the bytes are taken.
    avio_flush(io_.get());
    if (io_->error < 0) return AvError(io_->error, "writing output");
    muxer_.reset();
    io_.reset();
    return file_.Release();
  }

 private:
  bool is_mp4() const { return options_.container == Container::kMp4; }

  absl::Status OpenEncoder() {
    const char* name = is_mp4() ? "libx264" : "libvpx-vp9";
    const AVCodec* codec = avcodec_find_encoder_by_name(name);
    if (codec == nullptr) {
      return absl::InternalError(absl::StrCat("FFmpeg has no ", name, " encoder in this build"));
    }
    codec_.reset(avcodec_alloc_context3(codec));
    if (codec_ == nullptr) return absl::ResourceExhaustedError("allocating encoder");
    AVCodecContext* c = codec_.get();
    c->width = width_;
    c->height = height_;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = AVRational{1, options_.fps};
    c->framerate = AVRational{options_.fps, 1};
    c->sample_aspect_ratio = AVRational{1, 1};
    c->thread_count = options_.threads;
    if (options_.keyframe_interval > 0) c->gop_size = options_.keyframe_interval;
    // Tag what sws_scale produces (BT.709 matrix, limited range) so players convert back right.
    c->color_range = AVCOL_RANGE_MPEG;
    c->colorspace = AVCOL_SPC_BT709;
    c->color_primaries = AVCOL_PRI_BT709;
    c->color_trc = AVCOL_TRC_BT709;
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;  // MP4 and WebM both keep SPS/PPS in the header
    AVDictionary* opts = nullptr;
    if (is_mp4()) {
      const int crf = options_.crf >= 0 ? options_.crf : kDefaultCrfH264;
      av_dict_set(&opts, "preset", options_.x264_preset.c_str(), 0);
      av_dict_set(&opts, "crf", std::to_string(crf).c_str(), 0);
      if (const std::string& cpu = internal::X264AsmWithoutAvx512(); !cpu.empty()) {
        av_dict_set(&opts, "x264-params", ("asm=" + cpu).c_str(), 0);
      }
    } else {
      const int crf = options_.crf >= 0 ? options_.crf : kDefaultCrfVp9;
      c->bit_rate = 0;  // with crf: constant quality, no bitrate target
      av_dict_set(&opts, "crf", std::to_string(crf).c_str(), 0);
      av_dict_set(&opts, "deadline", "good", 0);
      av_dict_set(&opts, "cpu-used", std::to_string(options_.vp9_speed).c_str(), 0);
      if (options_.threads > 1) av_dict_set(&opts, "row-mt", "1", 0);
    }
    int err = avcodec_open2(c, codec, &opts);
    av_dict_free(&opts);
    if (err < 0) return AvError(err, absl::StrCat("opening ", name, " encoder"));

    frame_.reset(av_frame_alloc());
    packet_.reset(av_packet_alloc());
    if (frame_ == nullptr || packet_ == nullptr) {
      return absl::ResourceExhaustedError("allocating frame");
    }
    frame_->format = c->pix_fmt;
    frame_->width = width_;
    frame_->height = height_;
    frame_->color_range = c->color_range;
    frame_->colorspace = c->colorspace;
    if (err = av_frame_get_buffer(frame_.get(), 0); err < 0) {
      return AvError(err, "allocating frame");
    }
    sws_.reset(sws_getContext(width_, height_, AV_PIX_FMT_RGB24, width_, height_,
                              AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr,
                              nullptr));
    if (sws_ == nullptr) return absl::InternalError("creating the RGB -> YUV converter");
    // Source: full-range RGB; destination: BT.709 limited range (matches the stream tags).
    sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(SWS_CS_DEFAULT), /*srcRange=*/1,
                             sws_getCoefficients(SWS_CS_ITU709), /*dstRange=*/0, 0, 1 << 16,
                             1 << 16);
    return absl::OkStatus();
  }

  absl::Status OpenMuxer() {
    AVFormatContext* raw = nullptr;
    int err = avformat_alloc_output_context2(&raw, nullptr, is_mp4() ? "mp4" : "webm", nullptr);
    if (err < 0) return AvError(err, "creating muxer");
    muxer_.reset(raw);
    io_ = file_.OpenWriter();
    if (io_ == nullptr) return absl::ResourceExhaustedError("allocating output buffer");
    AVFormatContext* m = muxer_.get();
    m->pb = io_.get();
    // BITEXACT: no random WebM segment UID and no library version strings -> reproducible bytes.
    m->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_BITEXACT;
    m->url = av_strdup("memory");
    m->opaque = &file_;
    m->io_open = &OpenMemoryForFaststart;
    m->io_close2 = &CloseMemoryForFaststart;
    stream_ = avformat_new_stream(m, nullptr);
    if (stream_ == nullptr) return absl::ResourceExhaustedError("creating stream");
    if (err = avcodec_parameters_from_context(stream_->codecpar, codec_.get()); err < 0) {
      return AvError(err, "copying codec parameters");
    }
    stream_->time_base = codec_->time_base;  // a hint; the muxer may pick its own
    stream_->avg_frame_rate = codec_->framerate;
    stream_->r_frame_rate = codec_->framerate;
    AVDictionary* opts = nullptr;
    if (is_mp4()) av_dict_set(&opts, "movflags", "+faststart", 0);
    err = avformat_write_header(m, &opts);
    av_dict_free(&opts);
    if (err < 0) return AvError(err, "writing file header");
    return absl::OkStatus();
  }

  absl::Status EncodeFrames() {
    // Every frame goes through an aligned copy (see AlignedRgb), which also pads odd sizes.
    internal::AlignedRgb staged;
    if (!staged.Allocate(height_, width_)) return absl::ResourceExhaustedError("allocating frame");
    for (int i = 0; i < frames_.frames; ++i) {
      staged.CopyFrom(frames_.Frame(i), frames_.height, frames_.width);
      // The encoder may still reference the previous picture's buffer.
      if (int err = av_frame_make_writable(frame_.get()); err < 0) {
        return AvError(err, "allocating frame");
      }
      // Plane arrays of 4: sws_scale reads all four entries.
      const uint8_t* src[4] = {staged.data()};
      const int src_stride[4] = {staged.stride()};
      sws_scale(sws_.get(), src, src_stride, 0, height_, frame_->data, frame_->linesize);
      frame_->pts = i;
      frame_->pkt_duration = 1;
      if (int err = avcodec_send_frame(codec_.get(), frame_.get()); err < 0) {
        return AvError(err, absl::StrCat("encoding frame ", i));
      }
      LV_MEDIA_RETURN_IF_ERROR(Drain(/*flush=*/false));
    }
    return absl::OkStatus();
  }

  // Moves every packet the encoder has ready into the muxer; with `flush`, first tells the
  // encoder the input ended so it emits its delayed frames (B-frames, lookahead).
  absl::Status Drain(bool flush) {
    if (flush) {
      if (int err = avcodec_send_frame(codec_.get(), nullptr); err < 0) {
        return AvError(err, "flushing encoder");
      }
    }
    while (true) {
      int err = avcodec_receive_packet(codec_.get(), packet_.get());
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return absl::OkStatus();
      if (err < 0) return AvError(err, "encoding");
      // Constant frame rate: every packet lasts one tick of 1/fps. Without a duration the muxer
      // would give the last frame zero length and players drop it.
      if (packet_->duration <= 0) packet_->duration = 1;
      av_packet_rescale_ts(packet_.get(), codec_->time_base, stream_->time_base);
      packet_->stream_index = stream_->index;
      if (err = av_interleaved_write_frame(muxer_.get(), packet_.get()); err < 0) {
        return AvError(err, "writing packet");
      }
    }
  }

  const FrameView& frames_;
  const EncodeOptions& options_;
  int width_ = 0;
  int height_ = 0;
  // Declaration order = reverse destruction order: the muxer goes before the IO and the memory.
  internal::MemoryFile file_;
  internal::AvioPtr io_;
  FormatContextPtr muxer_;
  AVStream* stream_ = nullptr;
  internal::CodecContextPtr codec_;
  internal::FramePtr frame_;
  internal::PacketPtr packet_;
  internal::SwsPtr sws_;
};

}  // namespace

bool VideoCodecsAvailable() { return true; }

absl::StatusOr<std::string> EncodeVideo(const FrameView& frames, const EncodeOptions& options) {
  internal::InitFfmpeg();
  LV_MEDIA_RETURN_IF_ERROR(ValidateFrameView(frames));
  LV_MEDIA_RETURN_IF_ERROR(ValidateEncodeOptions(options));
  if (options.odd_size == OddSizePolicy::kError &&
      (frames.width % 2 != 0 || frames.height % 2 != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame size ", frames.width, "x", frames.height,
        " (width x height) must be even for yuv420p video: allowed even widths and heights, or "
        "odd_size = kPad to repeat the last column/row"));
  }
  return Encoder(frames, options).Run();
}

}  // namespace linvideo::media
