// media/ as a build without FFmpeg has it (LINVIDEO_WITH_FFMPEG=OFF): the same API, PNG intact,
// EncodeVideo / DecodeVideo answering FAILED_PRECONDITION with what still works. Linked against
// linvideo_media_nocodecs, so every build (and CI) compiles and runs the FFmpeg-less variant.
#include <gtest/gtest.h>

#include "media/png.h"
#include "media/video_decoder.h"
#include "media/video_encoder.h"
#include "tests/media/test_frames.h"

namespace linvideo::media {
namespace {

TEST(WithoutFfmpegTest, CodecsSayTheyAreMissingAndWhatWorks) {
  EXPECT_FALSE(VideoCodecsAvailable());
  const VideoFrames frames = testing::MovingGradient(2, 16, 16);
  absl::StatusOr<std::string> mp4 = EncodeVideo(frames.View(), {});
  EXPECT_EQ(mp4.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(mp4.status().message().find("encoding mp4 needs FFmpeg"), std::string::npos)
      << mp4.status();
  EXPECT_NE(mp4.status().message().find("PNG frames"), std::string::npos);
  absl::StatusOr<DecodedVideo> decoded = DecodeVideo("not a video");
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(WithoutFfmpegTest, BadInputIsStillInvalidArgumentFirst) {
  EXPECT_EQ(EncodeVideo(FrameView{}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  const VideoFrames frames = testing::MovingGradient(1, 8, 8);
  EncodeOptions bad;
  bad.fps = 0;
  EXPECT_EQ(EncodeVideo(frames.View(), bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseContainer("avi").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ContainerMimeType(*ParseContainer("webm")), "video/webm");
}

TEST(WithoutFfmpegTest, PngFramesNeedNoFfmpeg) {
  const VideoFrames frames = testing::MovingGradient(3, 12, 20);
  absl::StatusOr<std::vector<std::string>> pngs = EncodePngFrames(frames.View());
  ASSERT_TRUE(pngs.ok()) << pngs.status();
  ASSERT_EQ(pngs->size(), 3u);
  EXPECT_EQ((*pngs)[0].substr(1, 3), "PNG");
  EXPECT_TRUE(ContactSheet(frames.View(), {}).ok());
}

}  // namespace
}  // namespace linvideo::media
