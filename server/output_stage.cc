#include "server/output_stage.h"

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace linvideo::server {

OutputStage::OutputStage(int workers, int encode_threads, ComputeDevice* compute, Metrics* metrics,
                         StoreFn store, std::function<void(ServeRequest&)> on_finished)
    : encode_threads_(encode_threads),
      compute_(compute),
      metrics_(metrics),
      store_(std::move(store)),
      on_finished_(std::move(on_finished)) {
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { RunWorker(); });
}

OutputStage::~OutputStage() { Stop(); }

void OutputStage::Enqueue(std::shared_ptr<ServeRequest> r) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(r));
}

void OutputStage::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void OutputStage::RunWorker() {
  while (true) {
    std::shared_ptr<ServeRequest> r;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stop_
      r = std::move(queue_.front());
      queue_.pop_front();
    }
    Finish(*r);
    if (on_finished_) on_finished_(*r);
  }
}

void OutputStage::Finish(ServeRequest& r) {
  const absl::Time t0 = absl::Now();
  absl::StatusOr<media::VideoFrames> frames;
  {
    auto lease = ComputeDevice::Acquire(compute_);
    frames = r.model->executor->Decode(*r.state);
    r.state.reset();
    r.model.reset();  // nothing uses the checkpoint after the decode (request.h)
  }
  const absl::Time t1 = absl::Now();
  absl::StatusOr<EncodedOutput> encoded = frames.ok()
                                              ? Encode(*frames, r.output, encode_threads_)
                                              : absl::StatusOr<EncodedOutput>(frames.status());
  const absl::Time t2 = absl::Now();
  if (!encoded.ok()) {
    if (r.Fail(absl::InternalError(
            absl::StrCat("decode/encode failed: ", encoded.status().message())))) {
      LV_LOG(INFO) << "request=" << r.id << " failed: " << encoded.status();
    }
    return;
  }
  RequestStats stats;
  {
    absl::MutexLock rl(&r.mu);
    if (r.Terminal()) return;
    RequestStats& s = r.stats;
    s.decode_s = absl::ToDoubleSeconds(t1 - t0);
    s.encode_s = absl::ToDoubleSeconds(t2 - t1);
    s.total_s = absl::ToDoubleSeconds(t2 - r.created);
    s.video_bytes = encoded->bytes();
    stats = s;
  }
  // Stored (if the engine keeps results on disk) before anyone can see the request as done.
  const std::string stored = store_ ? store_(r, *encoded, stats, t2) : std::string();
  absl::MutexLock rl(&r.mu);
  if (r.Terminal()) return;
  const RequestStats& s = r.stats;
  if (stored.empty()) {
    r.result = std::make_shared<const EncodedOutput>(std::move(*encoded));
  } else {  // memory keeps the MIME type only; Get reads the file
    auto mime_only = std::make_shared<EncodedOutput>();
    mime_only->mime = encoded->mime;
    r.result = std::move(mime_only);
    r.result_file = stored;
  }
  r.phase = RequestPhase::kDone;
  r.finished = t2;
  r.Push(CompletedEvent{});
  if (metrics_ != nullptr)
    metrics_->ObserveLatency(s.total_s, s.queue_s, s.compute_s, s.decode_s, s.encode_s);
  LV_LOG(INFO) << "request=" << r.id << " done in " << s.total_s << "s (queue " << s.queue_s
               << ", compute " << s.compute_s << ", decode " << s.decode_s << ", encode "
               << s.encode_s << ") bytes=" << s.video_bytes;
}

}  // namespace linvideo::server
