// PNG encoding (lossless round trip through the decoder), contact sheets and SaveBytes/LoadBytes.

#include "media/png.h"

#include <zlib.h>

#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "media/bytes_io.h"
#include "media/video_decoder.h"
#include "tests/media/test_frames.h"
#include "tests/needs_ffmpeg.h"

namespace linvideo::media {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MovingGradient;

// Pixel (y, x) of frame f of `v`.
std::vector<uint8_t> Pixel(const FrameView& v, int f, int y, int x) {
  const uint8_t* p = v.Frame(f) + (static_cast<size_t>(y) * v.width + x) * 3;
  return {p[0], p[1], p[2]};
}

// True if the tile at (y0, x0) of the sheet equals frame f of `src` exactly.
bool TileEquals(const FrameView& sheet, int y0, int x0, const FrameView& src, int f) {
  for (int y = 0; y < src.height; ++y) {
    const uint8_t* a = sheet.Frame(0) + (static_cast<size_t>(y0 + y) * sheet.width + x0) * 3;
    const uint8_t* b = src.Frame(f) + static_cast<size_t>(y) * src.width * 3;
    if (!std::equal(a, a + src.width * 3, b)) return false;
  }
  return true;
}

TEST(PngTest, SingleFrameRoundTripIsPixelExact) {
  LINVIDEO_SKIP_WITHOUT_FFMPEG();
  for (auto [h, w] : {std::pair{48, 64}, std::pair{47, 63}, std::pair{1, 1}}) {
    const VideoFrames src = MovingGradient(3, h, w);
    absl::StatusOr<std::string> png = EncodePng(src.View().Single(2));
    ASSERT_TRUE(png.ok()) << png.status();
    EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    absl::StatusOr<DecodedVideo> out = DecodeVideo(*png);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->codec_name, "png");
    EXPECT_EQ(out->frame_count, 1);
    EXPECT_EQ(out->width, w);
    EXPECT_EQ(out->height, h);
    const FrameView last = src.View().Single(2);
    EXPECT_TRUE(std::equal(last.rgb, last.rgb + last.FrameBytes(), out->frames.rgb.begin()))
        << w << "x" << h;
  }
}

TEST(PngTest, EveryFrameRoundTripsInOrder) {
  LINVIDEO_SKIP_WITHOUT_FFMPEG();
  const VideoFrames src = MovingGradient(5, 24, 32);
  absl::StatusOr<std::vector<std::string>> pngs = EncodePngFrames(src.View());
  ASSERT_TRUE(pngs.ok()) << pngs.status();
  ASSERT_EQ(pngs->size(), 5u);
  for (int f = 0; f < 5; ++f) {
    absl::StatusOr<DecodedVideo> out = DecodeVideo((*pngs)[f]);
    ASSERT_TRUE(out.ok()) << out.status();
    const FrameView want = src.View().Single(f);
    EXPECT_TRUE(std::equal(want.rgb, want.rgb + want.FrameBytes(), out->frames.rgb.begin())) << f;
  }
}

// The chunks of a PNG file: type and payload, each CRC checked against zlib's crc32 (the decoder
// used above does not check CRCs by default).
std::vector<std::pair<std::string, std::string>> Chunks(const std::string& png) {
  std::vector<std::pair<std::string, std::string>> chunks;
  auto be32 = [&](size_t at) {
    return (uint32_t{static_cast<uint8_t>(png[at])} << 24) |
           (uint32_t{static_cast<uint8_t>(png[at + 1])} << 16) |
           (uint32_t{static_cast<uint8_t>(png[at + 2])} << 8) | static_cast<uint8_t>(png[at + 3]);
  };
  size_t at = 8;
  while (at + 12 <= png.size()) {
    const uint32_t len = be32(at);
    if (at + 12 + len > png.size()) break;
    const uint32_t crc =
        crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(png.data() + at + 4), 4 + len);
    EXPECT_EQ(crc, be32(at + 8 + len)) << "CRC of chunk " << png.substr(at + 4, 4);
    chunks.emplace_back(png.substr(at + 4, 4), png.substr(at + 8, len));
    at += 12 + len;
  }
  EXPECT_EQ(at, png.size()) << "bytes after the last chunk";
  return chunks;
}

TEST(PngTest, ChunksCrcsAndAdaptiveFiltersOfTheOwnEncoder) {
  // Noise (no filter helps) and a gradient (Sub / Up / Paeth do) side by side in one image.
  const int h = 37, w = 53;
  VideoFrames img = MovingGradient(1, h, w);
  uint32_t state = 12345;
  for (int y = 0; y < h; y += 2) {
    for (int x = 0; x < w * 3; ++x) {
      state = state * 1664525u + 1013904223u;
      img.rgb[static_cast<size_t>(y) * w * 3 + x] = static_cast<uint8_t>(state >> 24);
    }
  }
  absl::StatusOr<std::string> png = EncodePng(img.View());
  ASSERT_TRUE(png.ok()) << png.status();
  const auto chunks = Chunks(*png);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].first, "IHDR");
  EXPECT_EQ(chunks[0].second, std::string("\0\0\0\x35\0\0\0\x25\x08\x02\0\0\0", 13));
  EXPECT_EQ(chunks[1].first, "IDAT");
  EXPECT_EQ(chunks[2].first, "IEND");
  EXPECT_TRUE(chunks[2].second.empty());
  // The scanlines: a filter byte 0..4 each; noise rows and gradient rows choose differently.
  std::string raw(static_cast<size_t>(h) * (w * 3 + 1), '\0');
  uLongf raw_size = raw.size();
  ASSERT_EQ(
      uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_size,
                 reinterpret_cast<const Bytef*>(chunks[1].second.data()), chunks[1].second.size()),
      Z_OK);
  ASSERT_EQ(raw_size, raw.size());
  std::set<int> filters;
  for (int y = 0; y < h; ++y) {
    const int f = static_cast<uint8_t>(raw[static_cast<size_t>(y) * (w * 3 + 1)]);
    EXPECT_LE(f, 4) << "row " << y;
    filters.insert(f);
  }
  EXPECT_GE(filters.size(), 2u);
  // Lossless through an independent decoder (FFmpeg's, where this build has it).
  if (VideoCodecsAvailable()) {
    absl::StatusOr<DecodedVideo> out = DecodeVideo(*png);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->frames.rgb, img.rgb);
  }
  // A smooth frame compresses well below its raw size.
  const VideoFrames smooth = MovingGradient(1, 240, 320);
  absl::StatusOr<std::string> small = EncodePng(smooth.View());
  ASSERT_TRUE(small.ok());
  EXPECT_LT(small->size(), smooth.rgb.size() / 4);
}

TEST(PngTest, RejectsBadInput) {
  const VideoFrames src = MovingGradient(2, 8, 8);
  absl::StatusOr<std::string> two = EncodePng(src.View());
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(two.status().message(), HasSubstr("exactly 1 frame"));
  FrameView empty = src.View();
  empty.frames = 0;
  EXPECT_EQ(EncodePngFrames(empty).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<std::string>> no_threads = EncodePngFrames(src.View(), 0);
  EXPECT_EQ(no_threads.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_threads.status().message(), HasSubstr("allowed 1 or more"));
}

TEST(PngTest, ThreadsEncodeTheSameBytesInOrder) {
  const VideoFrames src = MovingGradient(7, 40, 56);
  absl::StatusOr<std::vector<std::string>> one = EncodePngFrames(src.View(), 1);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->size(), 7u);
  for (int threads : {2, 3, 7, 16}) {  // fewer, as many and more threads than frames
    absl::StatusOr<std::vector<std::string>> many = EncodePngFrames(src.View(), threads);
    ASSERT_TRUE(many.ok()) << many.status();
    EXPECT_EQ(*many, *one) << threads << " threads";
  }
  // Each frame's PNG is that frame's (frames differ, so a mix-up would show).
  for (int f = 0; f < 7; ++f) {
    absl::StatusOr<std::string> single = EncodePng(src.View().Single(f));
    ASSERT_TRUE(single.ok());
    EXPECT_EQ((*one)[f], *single) << f;
  }
}

TEST(SampleFrameIndicesTest, EvenlySpreadIncludingEnds) {
  EXPECT_THAT(SampleFrameIndices(17, 8), ElementsAre(0, 2, 5, 7, 9, 11, 14, 16));
  EXPECT_THAT(SampleFrameIndices(3, 16), ElementsAre(0, 1, 2));
  EXPECT_THAT(SampleFrameIndices(81, 1), ElementsAre(0));
  EXPECT_THAT(SampleFrameIndices(5, 5), ElementsAre(0, 1, 2, 3, 4));
  const std::vector<int> many = SampleFrameIndices(81, 16);
  ASSERT_EQ(many.size(), 16u);
  EXPECT_EQ(many.front(), 0);
  EXPECT_EQ(many.back(), 80);
  for (size_t i = 1; i < many.size(); ++i) EXPECT_GT(many[i], many[i - 1]);
}

TEST(ContactSheetTest, TilesSampledFramesWithSpacing) {
  LINVIDEO_SKIP_WITHOUT_FFMPEG();
  const VideoFrames src = MovingGradient(17, 48, 64);
  ContactSheetOptions o;
  o.columns = 4;
  o.max_frames = 8;
  o.spacing = 2;
  absl::StatusOr<std::string> png = ContactSheet(src.View(), o);
  ASSERT_TRUE(png.ok()) << png.status();
  absl::StatusOr<DecodedVideo> sheet = DecodeVideo(*png);
  ASSERT_TRUE(sheet.ok()) << sheet.status();
  EXPECT_EQ(sheet->width, 4 * 64 + 3 * 2);
  EXPECT_EQ(sheet->height, 2 * 48 + 1 * 2);
  const FrameView s = sheet->frames.View();
  // Row 0: frames 0, 2, 5, 7; row 1: 9, 11, 14, 16 — full size, so pixel-exact.
  EXPECT_TRUE(TileEquals(s, 0, 0, src.View(), 0));
  EXPECT_TRUE(TileEquals(s, 0, 66, src.View(), 2));
  EXPECT_TRUE(TileEquals(s, 50, 3 * 66, src.View(), 16));
  EXPECT_FALSE(TileEquals(s, 50, 3 * 66, src.View(), 15));
  EXPECT_EQ(Pixel(s, 0, 0, 64), (std::vector<uint8_t>{32, 32, 32}));  // gap = background
  EXPECT_EQ(Pixel(s, 0, 48, 10), (std::vector<uint8_t>{32, 32, 32}));
}

TEST(ContactSheetTest, FewFramesNarrowTheGridAndTileWidthScales) {
  LINVIDEO_SKIP_WITHOUT_FFMPEG();
  const VideoFrames src = MovingGradient(3, 48, 64);
  absl::StatusOr<DecodedVideo> narrow = DecodeVideo(*ContactSheet(src.View(), {}));
  ASSERT_TRUE(narrow.ok()) << narrow.status();
  EXPECT_EQ(narrow->width, 3 * 64 + 2 * 2);
  EXPECT_EQ(narrow->height, 48);

  const VideoFrames many = MovingGradient(17, 48, 64);
  ContactSheetOptions o;
  o.tile_width = 32;
  o.spacing = 0;
  absl::StatusOr<std::string> png = ContactSheet(many.View(), o);
  ASSERT_TRUE(png.ok()) << png.status();
  absl::StatusOr<DecodedVideo> small = DecodeVideo(*png);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->width, 4 * 32);   // 16 sampled frames, 4 columns
  EXPECT_EQ(small->height, 4 * 24);  // aspect ratio kept: 48 * 32 / 64
  // A 2x downscale of a smooth image stays close to the source pixel.
  const std::vector<uint8_t> got = Pixel(small->frames.View(), 0, 10, 10);
  const std::vector<uint8_t> want = Pixel(many.View(), 0, 20, 20);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(got[c], want[c], 12) << c;
  // Area averaging: at exactly 2x every tile pixel is the rounded mean of its 2x2 block.
  const FrameView t = small->frames.View();
  int mismatches = 0;
  for (int y = 0; y < 24; ++y) {
    for (int x = 0; x < 32; ++x) {
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < 2; ++dy) {
          for (int dx = 0; dx < 2; ++dx) sum += Pixel(many.View(), 0, 2 * y + dy, 2 * x + dx)[c];
        }
        const int mean = (sum + 2) / 4;  // sums of 4 integers: .5 only rounds up
        mismatches += Pixel(t, 0, y, x)[c] != mean;
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(ContactSheetTest, UpscaledTilesRepeatSourcePixelsAndConstantsStayConstant) {
  LINVIDEO_SKIP_WITHOUT_FFMPEG();
  VideoFrames flat{1, 5, 7, std::vector<uint8_t>(5 * 7 * 3)};
  for (size_t i = 0; i < flat.rgb.size(); i += 3) {
    flat.rgb[i] = 200, flat.rgb[i + 1] = 17, flat.rgb[i + 2] = 99;
  }
  ContactSheetOptions o;
  o.tile_width = 23;  // 7 -> 23 (not a whole factor); height 5 -> 16
  absl::StatusOr<std::string> png = ContactSheet(flat.View(), o);
  ASSERT_TRUE(png.ok()) << png.status();
  absl::StatusOr<DecodedVideo> up = DecodeVideo(*png);
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_EQ(up->width, 23);
  ASSERT_EQ(up->height, 16);
  for (int y = 0; y < 16; ++y) {
    for (int x = 0; x < 23; ++x) {
      ASSERT_EQ(Pixel(up->frames.View(), 0, y, x), (std::vector<uint8_t>{200, 17, 99}))
          << y << "," << x;
    }
  }
  // 2x up: each source pixel becomes a 2x2 block.
  const VideoFrames src = MovingGradient(1, 6, 8);
  o.tile_width = 16;
  absl::StatusOr<DecodedVideo> twice = DecodeVideo(*ContactSheet(src.View(), o));
  ASSERT_TRUE(twice.ok()) << twice.status();
  for (int y = 0; y < 12; ++y) {
    for (int x = 0; x < 16; ++x) {
      ASSERT_EQ(Pixel(twice->frames.View(), 0, y, x), Pixel(src.View(), 0, y / 2, x / 2))
          << y << "," << x;
    }
  }
}

TEST(ContactSheetTest, RejectsBadOptionsWithAllowedValues) {
  const VideoFrames src = MovingGradient(4, 16, 16);
  auto expect_error = [&](ContactSheetOptions o, const std::string& allowed) {
    absl::StatusOr<std::string> r = ContactSheet(src.View(), o);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(allowed));
  };
  ContactSheetOptions o;
  o.columns = 0;
  expect_error(o, "allowed 1..64");
  o = {};
  o.max_frames = 0;
  expect_error(o, "allowed 1..1024");
  o = {};
  o.spacing = -1;
  expect_error(o, "allowed 0..64");
  o = {};
  o.tile_width = 4;
  expect_error(o, "0 (full size) or 8..8192");

  const VideoFrames wide = MovingGradient(8, 8, 4096);
  absl::StatusOr<std::string> big = ContactSheet(wide.View(), {});
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(big.status().message(), HasSubstr("set tile_width"));
}

TEST(BytesIoTest, SaveAndLoadRoundTrip) {
  const std::string path = ::testing::TempDir() + "/linvideo_media_bytes_io_test.bin";
  const std::string data("a\0b\xff", 4);
  ASSERT_TRUE(SaveBytes(path, data).ok());
  absl::StatusOr<std::string> back = LoadBytes(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, data);
  ASSERT_TRUE(SaveBytes(path, "x").ok());  // replaces, not appends
  EXPECT_EQ(*LoadBytes(path), "x");
  std::remove(path.c_str());

  EXPECT_EQ(SaveBytes("", data).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SaveBytes("/nonexistent-dir-linvideo/x.bin", data).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadBytes("/nonexistent-dir-linvideo/x.bin").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace linvideo::media
