// server/output_format.h: the fps default and limits, PNG frames in every build, and MP4/WebM
// accepted where this build has FFmpeg but refused at submission (INVALID_ARGUMENT naming png
// frames) where it has not (LINVIDEO_WITH_FFMPEG=OFF, e.g. the GPU check's server build).
#include "server/output_format.h"

#include <gtest/gtest.h>

#include "media/video_encoder.h"
#include "tests/media/test_frames.h"

namespace linvideo::server {
namespace {

TEST(OutputFormatTest, FpsDefaultsAndLimits) {
  absl::StatusOr<OutputFormat> f = ResolveOutputFormat({OutputKind::kPngFrames, 0});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->fps, kDefaultFps);
  for (int bad : {-1, kMaxFps + 1}) {
    absl::StatusOr<OutputFormat> r = ResolveOutputFormat({OutputKind::kPngFrames, bad});
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("1..60"), std::string::npos) << r.status();
  }
}

TEST(OutputFormatTest, PngFramesEncodeOneImagePerFrameInEveryBuild) {
  const media::VideoFrames frames = media::testing::MovingGradient(3, 16, 24);
  absl::StatusOr<OutputFormat> f = ResolveOutputFormat({OutputKind::kPngFrames, 0});
  ASSERT_TRUE(f.ok());
  absl::StatusOr<EncodedOutput> out = Encode(frames, *f);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->mime, "image/png");
  ASSERT_EQ(out->blobs.size(), 3u);
  for (const std::string& b : out->blobs) EXPECT_EQ(b.substr(1, 3), "PNG");
  absl::StatusOr<EncodedOutput> threaded = Encode(frames, *f, /*threads=*/3);
  ASSERT_TRUE(threaded.ok()) << threaded.status();
  EXPECT_EQ(threaded->blobs, out->blobs);
}

TEST(OutputFormatTest, EncodeThreadsAutoIsOneOnTheCpuAndHalfTheCoresOverTheWorkersOnCuda) {
  EXPECT_EQ(ResolveEncodeThreads(0, "cpu", 16, 2), 1);
  EXPECT_EQ(ResolveEncodeThreads(0, "cuda", 16, 1), 8);
  EXPECT_EQ(ResolveEncodeThreads(0, "cuda", 16, 2), 4);  // two workers may encode at once
  EXPECT_EQ(ResolveEncodeThreads(0, "cuda:1", 12, 2), 3);
  EXPECT_EQ(ResolveEncodeThreads(0, "cuda", 64, 1), 8);
  EXPECT_EQ(ResolveEncodeThreads(0, "cuda", 8, 4), 1);  // the GPU overlay: 8 CPUs, 4 workers
  EXPECT_EQ(ResolveEncodeThreads(0, "cuda", 1, 1), 1);
  EXPECT_EQ(ResolveEncodeThreads(5, "cpu", 2, 2), 5);  // given: as given
}

TEST(OutputFormatTest, VideoContainersAreRefusedUpFrontInABuildWithoutFfmpeg) {
  for (OutputKind kind : {OutputKind::kMp4, OutputKind::kWebm}) {
    absl::StatusOr<OutputFormat> with = ResolveOutputFormat({kind, 0}, /*video_codecs=*/true);
    ASSERT_TRUE(with.ok()) << with.status();
    EXPECT_EQ(with->fps, kDefaultFps);
    absl::StatusOr<OutputFormat> without = ResolveOutputFormat({kind, 0}, /*video_codecs=*/false);
    EXPECT_EQ(without.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(without.status().message().find(kind == OutputKind::kMp4 ? "mp4" : "webm"),
              std::string::npos)
        << without.status();
    EXPECT_NE(without.status().message().find("without FFmpeg"), std::string::npos);
    EXPECT_NE(without.status().message().find("png frames"), std::string::npos);
  }
  // PNG frames need no codec; a bad fps is still the first thing said.
  EXPECT_TRUE(ResolveOutputFormat({OutputKind::kPngFrames, 0}, false).ok());
  EXPECT_NE(ResolveOutputFormat({OutputKind::kMp4, 99}, false).status().message().find("1..60"),
            std::string::npos);
}

TEST(OutputFormatTest, ThisBuildEncodesVideoOrRefusesBeforeAnyCompute) {
  const media::VideoFrames frames = media::testing::MovingGradient(3, 16, 24);
  for (OutputKind kind : {OutputKind::kMp4, OutputKind::kWebm}) {
    absl::StatusOr<OutputFormat> f = ResolveOutputFormat({kind, 0});
    if (media::VideoCodecsAvailable()) {
      ASSERT_TRUE(f.ok()) << f.status();
      absl::StatusOr<EncodedOutput> out = Encode(frames, *f);
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(out->mime, kind == OutputKind::kMp4 ? "video/mp4" : "video/webm");
      EXPECT_EQ(out->blobs.size(), 1u);
    } else {
      EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
      // Had it got through, the encoder itself says the same instead of producing nothing.
      absl::StatusOr<EncodedOutput> out = Encode(frames, {kind, kDefaultFps});
      EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
    }
  }
}

}  // namespace
}  // namespace linvideo::server
