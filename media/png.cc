#include "media/png.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "media/status_macros.h"

namespace linvideo::media {
namespace {

// PNG written here (signature, IHDR, IDAT, IEND; RFC 2083 / ISO 15948) with zlib, not FFmpeg:
// the encoder is ~80 lines, and a server build that needs only PNG then needs no FFmpeg (whose
// Debian closure is ~114 MiB, too large to carry to the GPU machines). Each scanline takes the
// filter (None, Sub, Up, Average, Paeth) with the smallest sum of |signed bytes|, the heuristic
// the PNG specification recommends; deflate at zlib's default level.
void AppendBe32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void AppendChunk(std::string& out, const char type[4], const std::string& data) {
  AppendBe32(out, static_cast<uint32_t>(data.size()));
  const size_t type_at = out.size();
  out.append(type, 4);
  out.append(data);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + type_at), 4 + data.size());
  AppendBe32(out, static_cast<uint32_t>(crc));
}

uint8_t Paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  return static_cast<uint8_t>(pa <= pb && pa <= pc ? a : (pb <= pc ? b : c));
}

// One scanline under PNG filter F (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) into `out`; returns
// the sum of |signed bytes|, the specification's heuristic for choosing a filter.
template <int F>
uint64_t FilterRow(const uint8_t* cur, const uint8_t* up, size_t row, uint8_t* out) {
  uint64_t cost = 0;
  for (size_t i = 0; i < row; ++i) {
    const int a = i >= 3 ? cur[i - 3] : 0, b = up[i], c = i >= 3 ? up[i - 3] : 0;
    int pred = 0;
    if constexpr (F == 1) pred = a;
    if constexpr (F == 2) pred = b;
    if constexpr (F == 3) pred = (a + b) / 2;
    if constexpr (F == 4) pred = Paeth(a, b, c);
    const auto v = static_cast<uint8_t>(cur[i] - pred);
    out[i] = v;
    cost += v < 128 ? v : 256 - v;
  }
  return cost;
}

// Filtered scanlines (each: its filter byte, then width·3 bytes) of an RGB24 image.
std::string FilterRows(const uint8_t* rgb, int height, int width) {
  using FilterFn = uint64_t (*)(const uint8_t*, const uint8_t*, size_t, uint8_t*);
  static constexpr FilterFn kFilters[5] = {FilterRow<0>, FilterRow<1>, FilterRow<2>, FilterRow<3>,
                                           FilterRow<4>};
  const size_t row = static_cast<size_t>(width) * 3;
  std::string out;
  out.reserve((row + 1) * height);
  std::vector<uint8_t> zero(row, 0), candidate(row), best(row);
  for (int y = 0; y < height; ++y) {
    const uint8_t* cur = rgb + y * row;
    const uint8_t* up = y > 0 ? cur - row : zero.data();
    uint64_t best_cost = UINT64_MAX;
    uint8_t best_filter = 0;
    for (uint8_t filter = 0; filter < 5; ++filter) {
      const uint64_t cost = kFilters[filter](cur, up, row, candidate.data());
      if (cost < best_cost) {
        best_cost = cost;
        best_filter = filter;
        best.swap(candidate);
      }
    }
    out.push_back(static_cast<char>(best_filter));
    out.append(reinterpret_cast<const char*>(best.data()), row);
  }
  return out;
}

absl::StatusOr<std::string> EncodeRgbPng(const uint8_t* rgb, int height, int width) {
  const std::string raw = FilterRows(rgb, height, width);
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::string packed(packed_size, '\0');
  if (int err = compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                          reinterpret_cast<const Bytef*>(raw.data()),
                          static_cast<uLong>(raw.size()), Z_DEFAULT_COMPRESSION);
      err != Z_OK) {
    return absl::InternalError(absl::StrCat("zlib compress2 failed with ", err));
  }
  packed.resize(packed_size);
  std::string png("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  AppendBe32(ihdr, static_cast<uint32_t>(width));
  AppendBe32(ihdr, static_cast<uint32_t>(height));
  // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
  ihdr.append("\x08\x02\x00\x00\x00", 5);
  AppendChunk(png, "IHDR", ihdr);
  AppendChunk(png, "IDAT", packed);
  AppendChunk(png, "IEND", "");
  return png;
}

// Area-average resampling of an RGB24 image (the mean of the source pixels each output pixel
// covers, weighted by the covered fraction; the same for up- and downscaling), rounded to nearest.
// Contact-sheet tiles only: a quick look, not a video scaler.
void ScaleArea(const uint8_t* src, int sh, int sw, uint8_t* dst, int dh, int dw) {
  // Source spans of output row / column i: [i·s/d, (i+1)·s/d) in source pixels.
  struct Span {
    int first, last;         // source pixels touched
    double first_w, last_w;  // coverage of the first and last
  };
  auto spans = [](int s, int d) {
    std::vector<Span> out(d);
    const double scale = static_cast<double>(s) / d;
    for (int i = 0; i < d; ++i) {
      const double a = i * scale, b = (i + 1) * scale;
      Span& sp = out[i];
      sp.first = static_cast<int>(a);
      sp.last = std::min(s - 1, static_cast<int>(std::ceil(b)) - 1);
      sp.first_w = std::min(b, sp.first + 1.0) - a;
      sp.last_w = sp.last > sp.first ? b - sp.last : sp.first_w;
    }
    return out;
  };
  const std::vector<Span> ys = spans(sh, dh), xs = spans(sw, dw);
  const double norm = (static_cast<double>(dh) / sh) * (static_cast<double>(dw) / sw);  // 1 / area
  auto weight = [](const Span& sp, int i) {
    return i == sp.first ? sp.first_w : (i == sp.last ? sp.last_w : 1.0);
  };
  for (int oy = 0; oy < dh; ++oy) {
    const Span& sy = ys[oy];
    for (int ox = 0; ox < dw; ++ox) {
      const Span& sx = xs[ox];
      double acc[3] = {0, 0, 0};
      for (int y = sy.first; y <= sy.last; ++y) {
        const double wy = weight(sy, y);
        const uint8_t* row = src + static_cast<size_t>(y) * sw * 3;
        for (int x = sx.first; x <= sx.last; ++x) {
          const double w = wy * weight(sx, x);
          for (int c = 0; c < 3; ++c) acc[c] += w * row[x * 3 + c];
        }
      }
      uint8_t* out = dst + (static_cast<size_t>(oy) * dw + ox) * 3;
      for (int c = 0; c < 3; ++c) {
        const double v = acc[c] * norm;
        out[c] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
}

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
  LV_MEDIA_RETURN_IF_ERROR(ValidateFrameView(frame));
  if (frame.frames != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("EncodePng takes exactly 1 frame, got ", frame.frames,
                     ": allowed a one-frame view (FrameView::Single(i)), or use EncodePngFrames"));
  }
  return EncodeRgbPng(frame.rgb, frame.height, frame.width);
}

absl::StatusOr<std::vector<std::string>> EncodePngFrames(const FrameView& frames, int threads) {
  LV_MEDIA_RETURN_IF_ERROR(ValidateFrameView(frames));
  if (threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("EncodePngFrames: threads = ", threads, ": allowed 1 or more"));
  }
  const int n = frames.frames;
  std::vector<std::string> pngs(n);
  std::vector<absl::Status> errors(n);
  std::atomic<int> next{0};  // the next frame to encode: threads take frames as they finish
  auto encode = [&] {
    for (int i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      auto png = EncodeRgbPng(frames.Frame(i), frames.height, frames.width);
      if (png.ok()) {
        pngs[i] = std::move(*png);
      } else {
        errors[i] = png.status();
      }
    }
  };
  std::vector<std::thread> pool;
  const int extra = std::min(threads, n) - 1;  // the calling thread is one of them
  pool.reserve(std::max(extra, 0));
  for (int t = 0; t < extra; ++t) {
    try {
      pool.emplace_back(encode);
    } catch (const std::system_error&) {
      break;  // no more threads now (process or cgroup limit): the ones running do the rest
    }
  }
  encode();
  for (std::thread& t : pool) t.join();
  for (const absl::Status& e : errors) {
    if (!e.ok()) return e;  // the first frame's error, whatever thread met it
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

  std::vector<uint8_t> tile;
  if (tile_w != frames.width || tile_h != frames.height) {
    tile.resize(static_cast<size_t>(tile_h) * tile_w * 3);
  }
  const size_t sheet_row = static_cast<size_t>(sheet_w) * 3;
  const size_t tile_row = static_cast<size_t>(tile_w) * 3;
  for (int k = 0; k < n; ++k) {
    const uint8_t* src = frames.Frame(indices[k]);
    if (!tile.empty()) {
      ScaleArea(src, frames.height, frames.width, tile.data(), tile_h, tile_w);
      src = tile.data();
    }
    const size_t x0 = static_cast<size_t>(k % columns) * (tile_w + options.spacing);
    const size_t y0 = static_cast<size_t>(k / columns) * (tile_h + options.spacing);
    for (int y = 0; y < tile_h; ++y) {
      std::memcpy(&sheet[(y0 + y) * sheet_row + x0 * 3], src + y * tile_row, tile_row);
    }
  }
  return EncodePng(
      FrameView{sheet.data(), 1, static_cast<int>(sheet_h), static_cast<int>(sheet_w)});
}

}  // namespace linvideo::media
