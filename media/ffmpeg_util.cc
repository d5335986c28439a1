#include "media/ffmpeg_util.h"

#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"

extern "C" {
#include <libavutil/error.h>
#include <libavutil/log.h>
#include <libavutil/mem.h>
}

namespace linvideo::media::internal {
namespace {

// 64 KiB: large enough that the muxer rarely calls back per packet, small enough to not matter.
constexpr int kAvioBufferSize = 64 * 1024;

// The opaque state behind every AVIOContext made here: either a growable std::string (writer or
// live reader over a MemoryFile) or borrowed bytes, plus this context's own cursor.
struct IoCursor {
  std::string* file = nullptr;
  const uint8_t* data = nullptr;
  size_t size = 0;
  int64_t pos = 0;

  const uint8_t* Bytes() const {
    return file != nullptr ? reinterpret_cast<const uint8_t*>(file->data()) : data;
  }
  int64_t Size() const { return static_cast<int64_t>(file != nullptr ? file->size() : size); }
};

int ReadCallback(void* opaque, uint8_t* buf, int buf_size) {
  auto* c = static_cast<IoCursor*>(opaque);
  const int64_t n = std::min<int64_t>(buf_size, c->Size() - c->pos);
  if (n <= 0) return AVERROR_EOF;
  std::memcpy(buf, c->Bytes() + c->pos, static_cast<size_t>(n));
  c->pos += n;
  return static_cast<int>(n);
}

// FFmpeg 5.1 (lavf 59) passes a non-const buffer to the write callback.
int WriteCallback(void* opaque, uint8_t* buf, int buf_size) {
  auto* c = static_cast<IoCursor*>(opaque);
  if (buf_size <= 0) return 0;
  const size_t end = static_cast<size_t>(c->pos) + static_cast<size_t>(buf_size);
  // A seek past the end followed by a write leaves a zero-filled gap, as a file would.
  if (end > c->file->size()) c->file->resize(end);
  std::memcpy(c->file->data() + c->pos, buf, static_cast<size_t>(buf_size));
  c->pos = static_cast<int64_t>(end);
  return buf_size;
}

int64_t SeekCallback(void* opaque, int64_t offset, int whence) {
  auto* c = static_cast<IoCursor*>(opaque);
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) return c->Size();
  int64_t target;
  switch (whence) {
    case SEEK_SET:
      target = offset;
      break;
    case SEEK_CUR:
      target = c->pos + offset;
      break;
    case SEEK_END:
      target = c->Size() + offset;
      break;
    default:
      return AVERROR(EINVAL);
  }
  if (target < 0) return AVERROR(EINVAL);
  c->pos = target;
  return target;
}

AvioPtr MakeAvio(IoCursor* cursor, bool writable) {
  auto* buffer = static_cast<unsigned char*>(av_malloc(kAvioBufferSize));
  if (buffer == nullptr) {
    delete cursor;
    return nullptr;
  }
  AVIOContext* io = avio_alloc_context(buffer, kAvioBufferSize, writable ? 1 : 0, cursor,
                                       writable ? nullptr : &ReadCallback,
                                       writable ? &WriteCallback : nullptr, &SeekCallback);
  if (io == nullptr) {
    av_free(buffer);
    delete cursor;
    return nullptr;
  }
  io->seekable = AVIO_SEEKABLE_NORMAL;
  return AvioPtr(io);
}

}  // namespace

void InitFfmpeg() {
  static std::once_flag once;
  // Encoders (x264 in particular) log per-stream info lines at the default level; keep errors.
  std::call_once(once, [] { av_log_set_level(AV_LOG_ERROR); });
}

const std::string& X264AsmWithoutAvx512() {
  static const std::string* const asm_param = [] {
    std::string value;
#if defined(__x86_64__) || defined(__i386__)
    constexpr uint32_t kX264CpuAvx512 = 1u << 16;  // X264_CPU_AVX512 in x264.h
    // libx264 is loaded as a dependency of libavcodec; its detector is a public symbol.
    using DetectFn = uint32_t (*)();
    if (auto detect = reinterpret_cast<DetectFn>(dlsym(RTLD_DEFAULT, "x264_cpu_detect"))) {
      const uint32_t flags = detect();
      if ((flags & kX264CpuAvx512) != 0) value = std::to_string(flags & ~kX264CpuAvx512);
    }
#endif
    return new std::string(std::move(value));
  }();
  return *asm_param;
}

std::string AvErrorString(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof(buf));
  return absl::StrCat(buf, " (", err, ")");
}

absl::Status AvError(int err, absl::string_view what, bool input_error) {
  std::string message = absl::StrCat(what, ": ", AvErrorString(err));
  if (err == AVERROR(ENOMEM)) return absl::ResourceExhaustedError(message);
  if (input_error && (err == AVERROR_INVALIDDATA || err == AVERROR_EOF ||
                      err == AVERROR_DEMUXER_NOT_FOUND || err == AVERROR_DECODER_NOT_FOUND ||
                      err == AVERROR_STREAM_NOT_FOUND || err == AVERROR_PATCHWELCOME)) {
    return absl::InvalidArgumentError(message);
  }
  return absl::InternalError(message);
}

void AvioDeleter::operator()(AVIOContext* io) const {
  if (io == nullptr) return;
  delete static_cast<IoCursor*>(io->opaque);
  av_freep(&io->buffer);
  avio_context_free(&io);
}

bool AlignedRgb::Allocate(int height, int width) {
  height_ = height;
  width_ = width;
  stride_ = (width * 3 + 63) & ~63;
  data_.reset(static_cast<uint8_t*>(av_mallocz(static_cast<size_t>(stride_) * height + 64)));
  return data_ != nullptr;
}

void AlignedRgb::CopyFrom(const uint8_t* src, int src_height, int src_width) {
  const size_t src_row = static_cast<size_t>(src_width) * 3;
  for (int y = 0; y < height_; ++y) {
    const uint8_t* s = src + std::min(y, src_height - 1) * src_row;
    uint8_t* d = data_.get() + static_cast<size_t>(y) * stride_;
    std::memcpy(d, s, src_row);
    for (int x = src_width; x < width_; ++x) std::memcpy(d + x * 3, s + src_row - 3, 3);
  }
}

AvioPtr MemoryFile::OpenWriter() { return MakeAvio(new IoCursor{&data_}, /*writable=*/true); }

AvioPtr MemoryFile::OpenReader() { return MakeAvio(new IoCursor{&data_}, /*writable=*/false); }

AvioPtr OpenMemoryReader(const uint8_t* data, size_t size) {
  return MakeAvio(new IoCursor{nullptr, data, size}, /*writable=*/false);
}

}  // namespace linvideo::media::internal
