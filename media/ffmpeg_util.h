#pragma once
// Internal to media/: RAII owners for FFmpeg objects, in-memory AVIO (read/write/seek) and
// AVERROR -> absl::Status conversion. Not part of the public media API.
//
// Thread safety: nothing here has global mutable state except the FFmpeg log level, which
// InitFfmpeg() sets exactly once (std::call_once); every other object belongs to one call.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "media/status_macros.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>
#include <libavutil/mem.h>
#include <libswscale/swscale.h>
}

namespace linvideo::media::internal {

// Sets the FFmpeg log level to errors only, once per process (safe to call from any thread).
void InitFfmpeg();

// The libx264 "asm" parameter that keeps x264's own CPU detection minus AVX-512 ("" when x264 is
// not loaded, cannot be queried, or the CPU has no AVX-512). Computed once; thread-safe.
// Why: x264 0.164 (Debian 12) reads uninitialised memory in its AVX-512 code when mbtree and
// B-frames are on, so identical inputs gave different bytes from run to run (seen with the
// ffmpeg CLI too, with MALLOC_PERTURB_); with AVX2 as the top level the output is reproducible.
const std::string& X264AsmWithoutAvx512();

// "Invalid data found when processing input (-1094995529)".
std::string AvErrorString(int err);

// INTERNAL status "<what>: <ffmpeg error text>"; INVALID_ARGUMENT for AVERROR_INVALIDDATA-like
// input errors when `input_error` is set (decoding untrusted bytes).
absl::Status AvError(int err, absl::string_view what, bool input_error = false);

struct CodecContextDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};
// Frees one of the AVIOContexts made below: its (possibly reallocated) buffer and its cursor.
struct AvioDeleter {
  void operator()(AVIOContext* io) const;
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using SwsPtr = std::unique_ptr<SwsContext, SwsDeleter>;
using AvioPtr = std::unique_ptr<AVIOContext, AvioDeleter>;

// An RGB24 image in memory swscale is safe and deterministic with: rows 64-byte aligned and slack
// after the last row. swscale's SIMD loads read up to 16 bytes past the last pixel (an
// out-of-bounds read on a caller's tightly packed buffer) and pick code paths by pointer alignment,
// which made x264 output differ from run to run with malloc'd inputs; staging through this fixes
// both.
class AlignedRgb {
 public:
  // Allocates height x width pixels; false if out of memory.
  bool Allocate(int height, int width);
  // Copies a tightly packed src_height x src_width RGB24 image (each at most this size) to the
  // top-left corner and fills the rest by repeating the last column and row.
  void CopyFrom(const uint8_t* src, int src_height, int src_width);
  uint8_t* data() { return data_.get(); }
  int stride() const { return stride_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { av_free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  int height_ = 0;
  int width_ = 0;
  int stride_ = 0;
};

// A growable in-memory "file": the muxer writes it (and seeks back to patch headers, and for MP4
// faststart reads it back through OpenReader) exactly as it would a real file.
class MemoryFile {
 public:
  // Writable + seekable AVIOContext (muxing). This object must outlive it.
  AvioPtr OpenWriter();
  // Read-only + seekable AVIOContext over the live contents, with its own cursor (the faststart
  // second pass reads ahead of where it rewrites). This object must outlive it.
  AvioPtr OpenReader();

  size_t size() const { return data_.size(); }
  std::string Release() { return std::move(data_); }

 private:
  std::string data_;
};

// Read-only + seekable AVIOContext over borrowed bytes (demuxing caller input without a copy);
// `data` must outlive it.
AvioPtr OpenMemoryReader(const uint8_t* data, size_t size);

}  // namespace linvideo::media::internal
