#pragma once
// PNG output of RGB24 frames (lossless; encoded here with zlib, adaptive per-row filters): single
// frames, every frame, or one contact sheet with a sample of the frames tiled in a grid for a quick
// look at a video (tiles scaled by area averaging). No FFmpeg.
//
// Thread safety: no global mutable state; concurrent calls are fine.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "media/frames.h"

namespace linvideo::media {

// Encodes a one-frame view (use FrameView::Single(i) to pick a frame) as an RGB24 PNG.
// INVALID_ARGUMENT unless frame.frames == 1 and the view is valid.
absl::StatusOr<std::string> EncodePng(const FrameView& frame);

// One PNG per frame, in order. Frames are independent, so `threads` > 1 encodes them on that many
// threads (at most one per frame; the calling thread is one of them; fewer if threads cannot be
// started): the same bytes as one thread. A 480p frame takes 12-50 ms on one core (smooth
// frames to noise), so an 81-frame video is 1-4 s on one thread.
// INVALID_ARGUMENT for an invalid view or threads < 1.
absl::StatusOr<std::vector<std::string>> EncodePngFrames(const FrameView& frames, int threads = 1);

inline constexpr int kMaxContactSheetDimension = 16384;

struct ContactSheetOptions {
  int columns = 4;      // tiles per row, 1..64 (fewer if there are fewer frames)
  int max_frames = 16;  // at most this many frames, sampled evenly incl. first and last; 1..1024
  int spacing = 2;      // pixels between tiles, 0..64
  int tile_width = 0;   // 0 = frames at full size; else each tile is scaled to this width
                        // (height keeps the aspect ratio), 8..kMaxDimension
  uint8_t background[3] = {32, 32, 32};  // RGB of the gaps and empty cells
};

// The frame indices a contact sheet of `frames` frames shows: all of them if frames <= max_frames,
// otherwise max_frames indices spread evenly from 0 to frames - 1 (rounded, strictly increasing).
std::vector<int> SampleFrameIndices(int frames, int max_frames);

// The sampled frames tiled row by row into one PNG of
//   columns' * tile_w + (columns' - 1) * spacing  by  rows * tile_h + (rows - 1) * spacing
// pixels, where columns' = min(columns, sampled frames) and rows = ceil(sampled / columns').
// INVALID_ARGUMENT for bad options or a sheet over kMaxContactSheetDimension (set tile_width).
absl::StatusOr<std::string> ContactSheet(const FrameView& frames,
                                         const ContactSheetOptions& options = {});

}  // namespace linvideo::media
