#pragma once
// The one vocabulary for where a generation request is, used by the scheduler (queued/running),
// the engine and its output stage, and the API (v1::RequestState).
//   kQueued -> kRunning (denoising steps) -> kFinishing (VAE decode + encode) -> kDone
// kQueued and kRunning may end in kCancelled (Cancel, client gone) or kFailed (deadline, errors);
// kFinishing only in kFailed (a decode/encode error): a cancel then comes too late to save work.

namespace linvideo::server {

enum class RequestPhase { kQueued, kRunning, kFinishing, kDone, kFailed, kCancelled };

inline bool IsTerminal(RequestPhase p) {
  return p == RequestPhase::kDone || p == RequestPhase::kFailed || p == RequestPhase::kCancelled;
}

}  // namespace linvideo::server
