#pragma once
// In-memory decoding of a video or image file (MP4, WebM, PNG, ... whatever this FFmpeg build
// can demux) into RGB24 frames. Meant for tests and clients that check what the server produced.
//
// Thread safety: no global mutable state; concurrent calls are fine. The input bytes are read in
// place (not copied) and must stay alive during the call.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "media/frames.h"

namespace linvideo::media {

struct DecodedVideo {
  VideoFrames frames;       // every decoded frame of the first video stream, RGB24
  double fps = 0;           // average frame rate from the container; 0 if it has none
  std::string codec_name;   // FFmpeg codec name: "h264", "vp9", "png", ...
  std::string format_name;  // demuxer name: "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...
  int width = 0;            // == frames.width
  int height = 0;           // == frames.height
  int frame_count = 0;      // == frames.frames
};

struct DecodeOptions {
  // Stops with RESOURCE_EXHAUSTED beyond this many frames (bounds memory for untrusted input).
  int max_frames = kMaxFrames;
  int threads = 1;  // decoder threads; 0 = FFmpeg's choice
};

// Decodes all frames of the best video stream of `bytes`. YUV is converted with the matrix and
// range the stream is tagged with (untagged: BT.601 limited). INVALID_ARGUMENT for data FFmpeg
// cannot parse or that has no video stream, or frames that change size mid-stream.
absl::StatusOr<DecodedVideo> DecodeVideo(std::string_view bytes, const DecodeOptions& options = {});

}  // namespace linvideo::media
