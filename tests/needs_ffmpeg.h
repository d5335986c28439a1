#pragma once
// For tests that decode or encode video through FFmpeg: in a build without it
// (LINVIDEO_WITH_FFMPEG=OFF) they skip, saying why, instead of failing on FAILED_PRECONDITION.
#include "gtest/gtest.h"
#include "media/video_encoder.h"

#define LINVIDEO_SKIP_WITHOUT_FFMPEG()                                         \
  do {                                                                         \
    if (!::linvideo::media::VideoCodecsAvailable()) {                          \
      GTEST_SKIP() << "needs FFmpeg; this build has LINVIDEO_WITH_FFMPEG=OFF"; \
    }                                                                          \
  } while (0)
