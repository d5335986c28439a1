// Encode -> decode round trips for MP4/H.264 and WebM/VP9, faststart layout, input validation and
// thread safety of media/video_encoder + media/video_decoder.

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "media/video_decoder.h"
#include "media/video_encoder.h"
#include "tests/media/test_frames.h"

namespace linvideo::media {
namespace {

using testing::FramePsnr;
using ::testing::HasSubstr;
using testing::MovingGradient;

// Top-level ISO-BMFF box types in file order.
std::vector<std::string> TopLevelBoxes(const std::string& mp4) {
  std::vector<std::string> boxes;
  size_t pos = 0;
  while (pos + 8 <= mp4.size()) {
    const auto* p = reinterpret_cast<const uint8_t*>(mp4.data() + pos);
    uint64_t size = (uint64_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
    if (size == 1 && pos + 16 <= mp4.size()) {
      size = 0;
      for (int k = 8; k < 16; ++k) size = (size << 8) | p[k];
    } else if (size == 0) {
      size = mp4.size() - pos;
    }
    boxes.emplace_back(mp4.data() + pos + 4, 4);
    if (size < 8) break;
    pos += size;
  }
  return boxes;
}

struct RoundTripCase {
  Container container;
  const char* codec;
};

void PrintTo(const RoundTripCase& c, std::ostream* os) { *os << c.codec; }

class RoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, KeepsEveryFrameSizeFpsAndQuality) {
  const VideoFrames src = MovingGradient(17, 48, 64);
  EncodeOptions options;
  options.container = GetParam().container;
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<DecodedVideo> out = DecodeVideo(*bytes);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->codec_name, GetParam().codec);
  EXPECT_EQ(out->frame_count, 17);  // the last frame too (packet durations are set)
  EXPECT_EQ(out->frames.frames, 17);
  EXPECT_EQ(out->width, 64);
  EXPECT_EQ(out->height, 48);
  EXPECT_DOUBLE_EQ(out->fps, 16.0);
  ASSERT_EQ(out->frames.rgb.size(), src.rgb.size());
  for (int f = 0; f < 17; ++f) {
    const double psnr = FramePsnr(src.View(), f, out->frames.View(), f, 48, 64);
    EXPECT_GE(psnr, 30.0) << "frame " << f;
    // Frames come back in order: each matches its own source frame better than the next one.
    if (f + 1 < 17) {
      EXPECT_GT(psnr, FramePsnr(src.View(), f + 1, out->frames.View(), f, 48, 64)) << f;
    }
  }
}

TEST_P(RoundTripTest, FpsAndSingleFrame) {
  const VideoFrames src = MovingGradient(1, 32, 32);
  EncodeOptions options;
  options.container = GetParam().container;
  options.fps = 24;
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<DecodedVideo> out = DecodeVideo(*bytes);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->frame_count, 1);
  EXPECT_DOUBLE_EQ(out->fps, 24.0);
}

TEST_P(RoundTripTest, OddSizeIsPaddedByRepeatingTheEdge) {
  const VideoFrames src = MovingGradient(5, 47, 63);
  EncodeOptions options;
  options.container = GetParam().container;
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<DecodedVideo> out = DecodeVideo(*bytes);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->width, 64);
  EXPECT_EQ(out->height, 48);
  EXPECT_EQ(out->frame_count, 5);
  for (int f = 0; f < 5; ++f) {
    EXPECT_GE(FramePsnr(src.View(), f, out->frames.View(), f, 47, 63), 30.0) << f;
  }

  options.odd_size = OddSizePolicy::kError;
  absl::StatusOr<std::string> rejected = EncodeVideo(src.View(), options);
  EXPECT_EQ(rejected.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rejected.status().message(), HasSubstr("63x47"));
  EXPECT_THAT(rejected.status().message(), HasSubstr("even"));
}

TEST_P(RoundTripTest, TinyFramesArePaddedToTwoByTwo) {
  const VideoFrames src = MovingGradient(2, 1, 1);
  EncodeOptions options;
  options.container = GetParam().container;
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<DecodedVideo> out = DecodeVideo(*bytes);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->width, 2);
  EXPECT_EQ(out->height, 2);
  EXPECT_EQ(out->frame_count, 2);
}

INSTANTIATE_TEST_SUITE_P(Containers, RoundTripTest,
                         ::testing::Values(RoundTripCase{Container::kMp4, "h264"},
                                           RoundTripCase{Container::kWebm, "vp9"}),
                         [](const auto& info) { return std::string(info.param.codec); });

TEST(EncodeVideoTest, Mp4IsFaststart) {
  const VideoFrames src = MovingGradient(17, 48, 64);
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), {});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::vector<std::string> boxes = TopLevelBoxes(*bytes);
  ASSERT_FALSE(boxes.empty());
  EXPECT_EQ(boxes.front(), "ftyp");
  const auto moov = std::find(boxes.begin(), boxes.end(), "moov");
  const auto mdat = std::find(boxes.begin(), boxes.end(), "mdat");
  ASSERT_NE(moov, boxes.end()) << ::testing::PrintToString(boxes);
  ASSERT_NE(mdat, boxes.end()) << ::testing::PrintToString(boxes);
  EXPECT_LT(moov - boxes.begin(), mdat - boxes.begin()) << ::testing::PrintToString(boxes);
}

TEST(EncodeVideoTest, WebmStartsWithEbmlHeader) {
  const VideoFrames src = MovingGradient(3, 16, 16);
  EncodeOptions options;
  options.container = Container::kWebm;
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), options);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_GE(bytes->size(), 4u);
  EXPECT_EQ(bytes->substr(0, 4), std::string("\x1a\x45\xdf\xa3", 4));
  EXPECT_NE(bytes->find("webm"), std::string::npos);  // DocType
}

TEST(EncodeVideoTest, LowerCrfGivesBiggerBetterVideo) {
  const VideoFrames src = MovingGradient(9, 48, 64);
  EncodeOptions good, poor;
  good.crf = 10;
  poor.crf = 45;
  absl::StatusOr<std::string> a = EncodeVideo(src.View(), good);
  absl::StatusOr<std::string> b = EncodeVideo(src.View(), poor);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(a->size(), b->size());
  absl::StatusOr<DecodedVideo> da = DecodeVideo(*a);
  absl::StatusOr<DecodedVideo> db = DecodeVideo(*b);
  ASSERT_TRUE(da.ok() && db.ok());
  EXPECT_GT(FramePsnr(src.View(), 4, da->frames.View(), 4, 48, 64),
            FramePsnr(src.View(), 4, db->frames.View(), 4, 48, 64));
}

// Every invalid input is INVALID_ARGUMENT and names the allowed values.
TEST(EncodeVideoTest, RejectsInvalidInputWithAllowedValues) {
  const VideoFrames src = MovingGradient(2, 16, 16);
  auto expect_error = [](const absl::StatusOr<std::string>& r, const std::string& allowed) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(allowed));
  };
  FrameView view = src.View();
  view.frames = 0;
  expect_error(EncodeVideo(view, {}), "allowed 1..100000");
  view = src.View();
  view.width = 0;
  expect_error(EncodeVideo(view, {}), "allowed 1..8192");
  view = src.View();
  view.height = 9000;
  expect_error(EncodeVideo(view, {}), "allowed 1..8192");
  view = src.View();
  view.rgb = nullptr;
  expect_error(EncodeVideo(view, {}), "frames*height*width*3");

  EncodeOptions o;
  o.fps = 0;
  expect_error(EncodeVideo(src.View(), o), "allowed 1..240");
  o.fps = 241;
  expect_error(EncodeVideo(src.View(), o), "allowed 1..240");
  o = {};
  o.crf = 52;
  expect_error(EncodeVideo(src.View(), o), "0..51");
  o.container = Container::kWebm;
  o.crf = 64;
  expect_error(EncodeVideo(src.View(), o), "0..63");
  o = {};
  o.x264_preset = "warp";
  expect_error(EncodeVideo(src.View(), o), "veryfast");
  o = {};
  o.vp9_speed = 9;
  expect_error(EncodeVideo(src.View(), o), "allowed 0..8");
  o = {};
  o.threads = 0;
  expect_error(EncodeVideo(src.View(), o), "allowed 1..64");
  o = {};
  o.keyframe_interval = -1;
  expect_error(EncodeVideo(src.View(), o), "0 (default)..1000");
}

TEST(EncodeVideoTest, ValidateVideoFramesChecksTheBufferSize) {
  VideoFrames v = MovingGradient(2, 8, 8);
  EXPECT_TRUE(ValidateVideoFrames(v).ok());
  v.rgb.pop_back();
  absl::Status s = ValidateVideoFrames(v);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("2*8*8*3 = 384"));
}

TEST(ContainerTest, ParseAndNames) {
  EXPECT_EQ(*ParseContainer("MP4"), Container::kMp4);
  EXPECT_EQ(*ParseContainer("webm"), Container::kWebm);
  absl::StatusOr<Container> bad = ParseContainer("avi");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("allowed mp4 (H.264), webm (VP9)"));
  EXPECT_EQ(ContainerMimeType(Container::kWebm), "video/webm");
  EXPECT_EQ(ContainerName(Container::kMp4), "mp4");
  EXPECT_EQ(ContainerCodecName(Container::kWebm), "vp9");
}

TEST(DecodeVideoTest, RejectsGarbage) {
  EXPECT_EQ(DecodeVideo("").status().code(), absl::StatusCode::kInvalidArgument);
  const std::string garbage(4096, '\x5a');
  absl::StatusOr<DecodedVideo> out = DecodeVideo(garbage);
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
}

TEST(DecodeVideoTest, TruncatedFileFailsOrYieldsFewerFrames) {
  const VideoFrames src = MovingGradient(17, 48, 64);
  EncodeOptions options;
  options.container = Container::kWebm;
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), options);
  ASSERT_TRUE(bytes.ok());
  absl::StatusOr<DecodedVideo> out = DecodeVideo(bytes->substr(0, bytes->size() / 2));
  if (out.ok()) EXPECT_LT(out->frame_count, 17);
}

TEST(DecodeVideoTest, MaxFramesBoundsMemory) {
  const VideoFrames src = MovingGradient(6, 16, 16);
  absl::StatusOr<std::string> bytes = EncodeVideo(src.View(), {});
  ASSERT_TRUE(bytes.ok());
  DecodeOptions options;
  options.max_frames = 3;
  EXPECT_EQ(DecodeVideo(*bytes, options).status().code(), absl::StatusCode::kResourceExhausted);
}

// Encoding from 4 threads at once gives the same bytes as encoding one after another
// (threads = 1 per encoder: x264 and libvpx are deterministic; muxers run bitexact).
TEST(EncodeVideoTest, ConcurrentEncodesMatchSerialBytes) {
  const VideoFrames a = MovingGradient(17, 48, 64);
  const VideoFrames b = MovingGradient(9, 32, 40);
  std::vector<std::pair<const VideoFrames*, EncodeOptions>> jobs;
  for (Container c : {Container::kMp4, Container::kWebm}) {
    for (const VideoFrames* v : {&a, &b}) {
      EncodeOptions o;
      o.container = c;
      jobs.emplace_back(v, o);
    }
  }
  std::vector<std::string> serial;
  for (const auto& [v, o] : jobs) {
    absl::StatusOr<std::string> bytes = EncodeVideo(v->View(), o);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    serial.push_back(*bytes);
  }
  std::vector<std::string> parallel(jobs.size() * 2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (size_t k = t; k < parallel.size(); k += 4) {
        const auto& [v, o] = jobs[k % jobs.size()];
        absl::StatusOr<std::string> bytes = EncodeVideo(v->View(), o);
        parallel[k] = bytes.ok() ? *bytes : std::string(bytes.status().message());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t k = 0; k < parallel.size(); ++k) {
    EXPECT_TRUE(parallel[k] == serial[k % jobs.size()]) << "job " << k;
  }
}

}  // namespace
}  // namespace linvideo::media
