#pragma once
// The one vocabulary for where a generation request is, used by the scheduler (queued/running),
// the engine and its output stage, and the API (v1::RequestState).
//   kQueued -> kRunning (denoising steps) -> kFinishing (VAE decode + encode) -> kDone
// and from any non-terminal phase to kFailed or kCancelled.

namespace linvideo::server {

enum class RequestPhase { kQueued, kRunning, kFinishing, kDone, kFailed, kCancelled };

inline bool IsTerminal(RequestPhase p) {
  return p == RequestPhase::kDone || p == RequestPhase::kFailed || p == RequestPhase::kCancelled;
}

}  // namespace linvideo::server
