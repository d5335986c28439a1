#pragma once
// OutputStage: the end of a request's life off the engine thread. Worker threads take requests
// whose last denoising step ran, VAE-decode their latents (under a compute lease) and encode the
// frames (FFmpeg / PNG, no lease: it overlaps the next steps), then publish the result, the stats
// and the Completed event on the request. Chunking the result for the wire is the gRPC layer's.
// Thread safety: Enqueue from any thread until Stop (the engine stops enqueueing first: its
// thread is joined before it stops the stage); Stop from one thread; `on_finished` runs on a worker
// after each request.

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/compute_device.h"
#include "server/metrics.h"
#include "server/request.h"

namespace linvideo::server {

class OutputStage {
 public:
  // Called for a request that encoded successfully, before it is published as done, with its
  // final stats and finish time: returns the file the result was stored in ("" keeps it in
  // memory). Runs on a worker; may block on disk.
  using StoreFn = std::function<std::string(const ServeRequest&, const EncodedOutput&,
                                            const RequestStats&, absl::Time finished)>;
  // `compute` and `metrics` may be null and must outlive the stage. Starts `workers` threads; each
  // encodes a request's PNG frames on `encode_threads` threads (itself included).
  // `store` may be empty; `on_finished` runs after each request (done or failed).
  OutputStage(int workers, int encode_threads, ComputeDevice* compute, Metrics* metrics,
              StoreFn store, std::function<void(ServeRequest&)> on_finished);
  ~OutputStage();  // Stop()s
  OutputStage(const OutputStage&) = delete;
  OutputStage& operator=(const OutputStage&) = delete;

  // Takes a request whose state is done (the engine hands its `state` over with it).
  void Enqueue(std::shared_ptr<ServeRequest> r);
  // Finishes the queued requests, then joins the workers.
  void Stop();

 private:
  void RunWorker();
  void Finish(ServeRequest& r);

  const int encode_threads_;
  ComputeDevice* compute_;
  Metrics* metrics_;
  StoreFn store_;
  std::function<void(ServeRequest&)> on_finished_;
  absl::Mutex mu_;
  std::deque<std::shared_ptr<ServeRequest>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace linvideo::server
