#include "server/services.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/log.h"
#include "server/proto_convert.h"
#include "server/request_journal.h"

namespace linvideo::server {
namespace {

// Largest GenerateEvent.chunk.data: results are streamed in pieces of this size.
constexpr size_t kChunkBytes = 1 << 20;

v1::RequestState ToProto(RequestPhase p) {
  switch (p) {
    case RequestPhase::kQueued:
      return v1::REQUEST_STATE_QUEUED;
    case RequestPhase::kRunning:
    case RequestPhase::kFinishing:  // decode + encode: still running for the API
      return v1::REQUEST_STATE_RUNNING;
    case RequestPhase::kDone:
      return v1::REQUEST_STATE_DONE;
    case RequestPhase::kFailed:
      return v1::REQUEST_STATE_FAILED;
    case RequestPhase::kCancelled:
      return v1::REQUEST_STATE_CANCELLED;
  }
  return v1::REQUEST_STATE_UNSPECIFIED;
}

v1::Sampler ToProto(core::params::SamplerKind kind) {
  switch (kind) {
    case core::params::SamplerKind::kUniPC:
      return v1::SAMPLER_UNIPC;
    case core::params::SamplerKind::kEuler:
      return v1::SAMPLER_EULER;
    case core::params::SamplerKind::kFewStep:
      return v1::SAMPLER_FEW_STEP;
  }
  return v1::SAMPLER_UNSPECIFIED;
}

// Streams a finished request's result: blob i (the video, or PNG frame i) in pieces of at most
// kChunkBytes, `last` on the final piece of the last blob. False when the client went away.
bool WriteChunks(const ServeRequest& r, grpc::ServerWriter<v1::GenerateEvent>* writer) {
  std::shared_ptr<const EncodedOutput> result;
  {
    absl::MutexLock l(&r.mu);
    result = r.result;
  }
  if (result == nullptr) return true;
  for (size_t i = 0; i < result->blobs.size(); ++i) {
    const std::string& blob = result->blobs[i];
    size_t off = 0;
    do {
      const size_t n = std::min(kChunkBytes, blob.size() - off);
      v1::GenerateEvent out;
      out.set_request_id(r.id);
      auto* c = out.mutable_chunk();
      c->set_data(blob.substr(off, n));
      c->set_frame_index(static_cast<int>(i));
      c->set_mime_type(result->mime);
      off += n;
      c->set_last(off >= blob.size() && i + 1 == result->blobs.size());
      if (!writer->Write(out)) return false;
    } while (off < blob.size());
  }
  return true;
}

void FillStats(const ServeRequest& r, const RequestStats& s, v1::Stats* out) {
  out->set_queue_seconds(s.queue_s);
  out->set_compute_seconds(s.compute_s);
  out->set_start_seconds(s.start_s);
  out->set_decode_seconds(s.decode_s);
  out->set_encode_seconds(s.encode_s);
  out->set_total_seconds(s.total_s);
  out->set_max_batch_size(s.max_batch);
  out->set_video_bytes(s.video_bytes);
  out->set_model(r.model_name);
  out->set_checkpoint_version(r.model_version);
  out->set_width(static_cast<int>(r.params.width));
  out->set_height(static_cast<int>(r.params.height));
  out->set_frames(static_cast<int>(r.params.frames));
  out->set_steps(static_cast<int>(r.params.steps));
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

grpc::Status CheckBearer(const grpc::ServerContext* ctx, const BearerToken* token) {
  if (token == nullptr || !token->enabled()) return grpc::Status::OK;
  auto it = ctx->client_metadata().find("authorization");
  std::string_view value;
  if (it != ctx->client_metadata().end())
    value = std::string_view(it->second.data(), it->second.size());
  return ToGrpc(token->Check(it == ctx->client_metadata().end() ? nullptr : &value));
}

grpc::Status GenerationService::Done(const char* rpc, grpc::Status s) {
  if (metrics_ != nullptr) {
    metrics_->CountRequest(rpc,
                           absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())));
  }
  return s;
}

absl::StatusOr<SubmitOptions> GenerationService::Convert(const grpc::ServerContext* ctx,
                                                         const v1::GenerateRequest& req,
                                                         bool streaming) {
  absl::StatusOr<SubmitOptions> o = SubmitOptionsFromProto(req, streaming);
  if (o.ok() && router_ != nullptr && ReplicaOfId(o->request_id).has_value()) {
    // Get and Cancel would forward such an id to the replica it names, never to this one.
    return absl::InvalidArgumentError(absl::StrCat(
        "request_id '", o->request_id,
        "' has the form of an id this server generates (r<digits>-<digits>.HOST_PORT, naming a "
        "replica); choose one that does not start with r<digits>-<digits>."));
  }
  if (o.ok() && ctx->deadline() != std::chrono::system_clock::time_point::max()) {
    o->deadline = absl::FromChrono(ctx->deadline());
  }
  return o;
}

grpc::Status GenerationService::Admit(grpc::ServerContext* ctx) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return a;
  if (limiter_ == nullptr || !limiter_->enabled()) return grpc::Status::OK;
  return ToGrpc(limiter_->Admit(PeerAddress(ctx->peer()), absl::Now()));
}

namespace {
// Why a Generate call ended early: its deadline (the metric then says DEADLINE_EXCEEDED, the
// server's latency) or the client (CANCELLED). The client's own deadline fires a little before
// the server's copy of it (that one starts when the call arrives), so a cancel within 100 ms of
// the deadline is the deadline's. The request is marked abandoned: if it still completes (the
// cancel came too late) its id goes to a retried Generate like a cancelled one's.
grpc::Status CallEnded(const grpc::ServerContext& ctx, ServeRequest& r, const char* what) {
  {
    absl::MutexLock l(&r.mu);
    r.abandoned = true;
  }
  const std::string& id = r.id;
  if (std::chrono::system_clock::now() + std::chrono::milliseconds(100) >= ctx.deadline()) {
    LV_LOG(INFO) << "request=" << id << " the call's deadline passed";
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "the call's deadline passed before the video was done");
  }
  LV_LOG(INFO) << "request=" << id << " " << what;
  return grpc::Status(grpc::StatusCode::CANCELLED, what);
}
}  // namespace

grpc::Status GenerationService::Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                                         grpc::ServerWriter<v1::GenerateEvent>* writer) {
  if (auto a = Admit(ctx); !a.ok()) return Done("Generate", a);
  StreamLimiter::Slot slot;  // held for the whole call
  if (streams_ != nullptr) {
    if (absl::Status s = streams_->Acquire(ctx->peer(), &slot); !s.ok())
      return Done("Generate", ToGrpc(s));
  }
  auto o = Convert(ctx, *req, /*streaming=*/true);
  if (!o.ok()) return Done("Generate", ToGrpc(o.status()));
  auto submitted = engine_->Submit(*o);
  if (!submitted.ok()) return Done("Generate", ToGrpc(submitted.status()));
  std::shared_ptr<ServeRequest> r = *submitted;
  ServeEvent e;
  while (true) {
    if (ctx->IsCancelled()) {
      // Client went away or its deadline passed: free the engine slot within one step.
      engine_->Cancel(*r);
      return Done("Generate", CallEnded(*ctx, *r, "client cancelled"));
    }
    if (!r->PopEvent(&e, absl::Milliseconds(100))) continue;
    if (std::holds_alternative<FailedEvent>(e)) {
      absl::MutexLock l(&r->mu);
      return Done("Generate", ToGrpc(r->error));
    }
    const bool completed = std::holds_alternative<CompletedEvent>(e);
    if (completed && !WriteChunks(*r, writer)) {
      return Done("Generate", CallEnded(*ctx, *r, "client stream closed"));
    }
    v1::GenerateEvent out;
    out.set_request_id(r->id);
    if (const auto* q = std::get_if<QueuedEvent>(&e)) {
      out.mutable_queued()->set_position(q->position);
    } else if (const auto* s = std::get_if<StartedEvent>(&e)) {
      out.mutable_started()->set_model(r->model_name);
      out.mutable_started()->set_checkpoint_version(r->model_version);
      out.mutable_started()->set_batch_size(s->batch_size);
    } else if (const auto* p = std::get_if<ProgressEvent>(&e)) {
      out.mutable_progress()->set_step(p->step);
      out.mutable_progress()->set_total_steps(p->total_steps);
    } else if (completed) {
      absl::MutexLock l(&r->mu);
      FillStats(*r, r->stats, out.mutable_completed()->mutable_stats());
    }
    if (!writer->Write(out)) {
      engine_->Cancel(*r);
      return Done("Generate", CallEnded(*ctx, *r, "client stream closed"));
    }
    if (completed) {
      absl::MutexLock l(&r->mu);
      // PNG frames (one blob each) are only streamed, never answered by Get: drop them. A single
      // video stays for Get within limits.result_ttl_s (a client that could not save it gets it
      // again with its id).
      if (r->result != nullptr && r->result->blobs.size() > 1) {
        auto mime_only = std::make_shared<EncodedOutput>();
        mime_only->mime = r->result->mime;
        r->result = std::move(mime_only);
        r->result_delivered = true;
      }
      return Done("Generate", grpc::Status::OK);
    }
  }
}

grpc::Status GenerationService::Submit(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                                       v1::SubmitResponse* resp) {
  if (auto a = Admit(ctx); !a.ok()) return Done("Submit", a);
  auto o = Convert(ctx, *req, /*streaming=*/false);
  if (!o.ok()) return Done("Submit", ToGrpc(o.status()));
  o->deadline = absl::InfiniteFuture();  // the Submit call's deadline is not the job's
  auto r = engine_->Submit(*o);
  if (!r.ok()) return Done("Submit", ToGrpc(r.status()));
  resp->set_request_id((*r)->id);
  return Done("Submit", grpc::Status::OK);
}

grpc::Status GenerationService::SetResult(const std::vector<std::string>& blobs,
                                          const v1::GetRequest& req, v1::GetResponse* resp) const {
  if (blobs.size() > 1) {
    return grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        "PNG frame results are only streamed by Generate; use MP4 or WEBM with Get");
  }
  if (blobs.empty()) return grpc::Status::OK;
  const std::string& all = blobs[0];
  const int64_t size = static_cast<int64_t>(all.size());
  resp->set_result_size(size);
  if (req.result_max_bytes() < 0 || req.result_offset() < 0 || req.result_offset() > size) {
    return grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE,
        absl::StrCat("result_offset ", req.result_offset(), " / result_max_bytes ",
                     req.result_max_bytes(), " are not allowed: the result has ", size,
                     " bytes; use 0 <= result_offset <= ", size, " and result_max_bytes >= 0"));
  }
  if (req.result_max_bytes() == 0) {
    if (size > max_result_part_) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("the result is ", size, " bytes, more than one message carries (",
                       max_result_part_,
                       " with limits.max_message_bytes=", max_result_part_ + kMessageHeadroom,
                       "); page it with GetRequest.result_offset and result_max_bytes (linvideo "
                       "status --out does), or stream it with Generate"));
    }
    resp->set_result(all);
    return grpc::Status::OK;
  }
  const int64_t n =
      std::min({req.result_max_bytes(), size - req.result_offset(), max_result_part_});
  resp->set_result(all.substr(static_cast<size_t>(req.result_offset()), static_cast<size_t>(n)));
  return grpc::Status::OK;
}

template <typename Req, typename Resp, typename Call>
std::optional<grpc::Status> GenerationService::Forward(grpc::ServerContext* ctx, const char* method,
                                                       const Req& req, Resp* resp, Call call) {
  if (router_ == nullptr) return std::nullopt;
  std::string owner;
  absl::StatusOr<std::shared_ptr<v1::Generation::Stub>> stub =
      router_->OwnerOf(req.request_id(), &owner);
  if (!stub.ok()) return ToGrpc(stub.status());
  if (*stub == nullptr) return std::nullopt;
  const auto& meta = ctx->client_metadata();
  if (auto f = meta.find(kForwardedHeader); f != meta.end()) {
    // Forwarded once already: the replica named in the id did not take it as its own.
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrCat("request '", req.request_id(), "' names replica ", owner,
                     ", and this replica (", router_->self(), ") got it forwarded from ",
                     std::string(f->second.data(), f->second.size()),
                     ": the replicas disagree on their addresses "
                     "(--replica.advertise)"));
  }
  grpc::ClientContext out;
  out.set_deadline(ctx->deadline());
  out.AddMetadata(kForwardedHeader, router_->self());
  if (auto a = meta.find("authorization"); a != meta.end()) {
    out.AddMetadata("authorization", std::string(a->second.data(), a->second.size()));
  }
  grpc::Status s = call(stub->get(), &out, req, resp);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    s = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     absl::StrCat("request '", req.request_id(), "' is held by replica ", owner,
                                  ", which does not answer: ", s.error_message()));
  }
  LV_LOG(INFO) << "request=" << req.request_id() << " " << method << " forwarded to " << owner
               << ": " << (s.ok() ? "OK" : s.error_message());
  return s;
}

grpc::Status GenerationService::Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                                    v1::GetResponse* resp) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("Get", a);
  if (auto f =
          Forward(ctx, "Get", *req, resp,
                  [](v1::Generation::Stub* stub, grpc::ClientContext* c, const v1::GetRequest& r,
                     v1::GetResponse* out) { return stub->Get(c, r, out); })) {
    return Done("Get", *f);
  }
  std::shared_ptr<ServeRequest> r = engine_->Find(req->request_id());
  if (r == nullptr) {
    return Done("Get", grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    absl::StrCat("no request '", req->request_id(),
                                                 "' (unknown or expired)")));
  }
  std::string stored;  // the result's file in the state folder, read outside the lock
  {
    absl::MutexLock l(&r->mu);
    resp->set_request_id(r->id);
    resp->set_state(ToProto(r->phase));
    resp->set_position(r->position);
    resp->set_step(r->step);
    resp->set_total_steps(static_cast<int>(r->params.steps));
    if (!r->error.ok()) {
      resp->set_error_code(static_cast<int>(r->error.code()));
      resp->set_error_message(std::string(r->error.message()));
    }
    if (r->phase != RequestPhase::kDone) return Done("Get", grpc::Status::OK);
    FillStats(*r, r->stats, resp->mutable_stats());
    resp->set_mime_type(r->result->mime);
    if (!req->include_result()) return Done("Get", grpc::Status::OK);
    if (r->result_delivered) {
      return Done("Get", grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      absl::StrCat("request '", r->id,
                                                   "' streamed PNG frames to its Generate call; "
                                                   "they are not kept. Get returns one file: use "
                                                   "mp4 or webm")));
    }
    if (r->result_file.empty()) return Done("Get", SetResult(r->result->blobs, *req, resp));
    stored = r->result_file;
  }
  if (req->result_max_bytes() > 0) {
    absl::StatusOr<std::shared_ptr<const EncodedOutput>> paged = PagedResult(r, stored);
    if (!paged.ok()) {
      LV_LOG(WARNING) << "request=" << req->request_id() << " Get: " << paged.status();
      return Done("Get", ToGrpc(paged.status()));
    }
    return Done("Get", SetResult((*paged)->blobs, *req, resp));
  }
  absl::StatusOr<EncodedOutput> out = LoadStoredResult(stored, req->request_id());
  if (!out.ok()) {
    LV_LOG(WARNING) << "request=" << req->request_id() << " Get: " << out.status();
    return Done("Get", ToGrpc(out.status()));
  }
  return Done("Get", SetResult(out->blobs, *req, resp));
}

absl::StatusOr<std::shared_ptr<const EncodedOutput>> GenerationService::PagedResult(
    const std::shared_ptr<ServeRequest>& r, const std::string& file) {
  {
    absl::MutexLock lock(&paged_mu_);
    for (auto it = paged_.begin(); it != paged_.end(); ++it) {
      if (it->file == file && it->request.lock() == r) {
        paged_.splice(paged_.begin(), paged_, it);
        return paged_.front().out;
      }
    }
  }
  // Read outside the lock: other Gets go on meanwhile (two first parts may both read the file).
  absl::StatusOr<EncodedOutput> loaded = LoadStoredResult(file, r->id);
  if (!loaded.ok()) return loaded.status();
  auto out = std::make_shared<const EncodedOutput>(std::move(*loaded));
  absl::MutexLock lock(&paged_mu_);
  paged_.push_front(PagedEntry{r, file, out});
  // The new one stays; older ones while they fit (count, bytes) and their request lives.
  int64_t bytes = 0;
  size_t kept = 0;
  for (auto it = paged_.begin(); it != paged_.end();) {
    if (kept == 0 || (kept < kPagedResults && !it->request.expired() &&
                      bytes + it->out->bytes() <= kPagedBytes)) {
      bytes += it->out->bytes();
      ++kept;
      ++it;
    } else {
      it = paged_.erase(it);
    }
  }
  return out;
}

grpc::Status GenerationService::Cancel(grpc::ServerContext* ctx, const v1::CancelRequest* req,
                                       v1::CancelResponse* resp) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("Cancel", a);
  if (auto f =
          Forward(ctx, "Cancel", *req, resp,
                  [](v1::Generation::Stub* stub, grpc::ClientContext* c, const v1::CancelRequest& r,
                     v1::CancelResponse* out) { return stub->Cancel(c, r, out); })) {
    return Done("Cancel", *f);
  }
  absl::Status s = engine_->Cancel(req->request_id());
  if (!s.ok()) return Done("Cancel", ToGrpc(s));
  std::shared_ptr<ServeRequest> r = engine_->Find(req->request_id());
  if (r != nullptr) {
    absl::MutexLock l(&r->mu);
    resp->set_state(ToProto(r->phase));
  }
  return Done("Cancel", grpc::Status::OK);
}

grpc::Status GenerationService::ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest*,
                                           v1::ListModelsResponse* resp) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("ListModels", a);
  bool first = true;
  for (const auto& m : registry_->Active()) {
    const ModelLimits& l = m->limits;
    v1::ModelInfo* info = resp->add_models();
    info->set_name(m->name);
    info->set_path(m->path);
    info->set_checkpoint_version(m->version);
    info->set_max_width(static_cast<int>(l.max_width));
    info->set_max_height(static_cast<int>(l.max_height));
    info->set_size_multiple(static_cast<int>(std::max(l.width_multiple(), l.height_multiple())));
    info->set_max_frames(static_cast<int>(l.max_frames));
    info->set_max_steps(static_cast<int>(l.max_steps));
    info->set_max_guidance(l.max_guidance);
    info->set_default_width(static_cast<int>(l.default_width));
    info->set_default_height(static_cast<int>(l.default_height));
    info->set_default_frames(static_cast<int>(l.default_frames));
    info->set_default_steps(static_cast<int>(l.default_steps));
    info->set_default_guidance(l.default_guidance);
    info->set_default_shift(l.default_shift);
    info->set_default_sampler(ToProto(l.default_sampler));
    for (int64_t t : l.fixed_timesteps) info->add_timesteps(static_cast<int32_t>(t));
    info->set_lineage_json(m->lineage_json);
    info->set_is_default(first);
    first = false;
  }
  return Done("ListModels", grpc::Status::OK);
}

void FillCheckpoint(const LoadedModel& m, bool active, v1::CheckpointInfo* info) {
  info->set_model(m.name);
  info->set_path(m.path);
  info->set_version(m.version);
  info->set_active(active);
  info->set_loaded_unix_ms(absl::ToUnixMillis(m.loaded_at));
}

grpc::Status AdminService::Done(const char* rpc, grpc::Status s) {
  if (metrics_ != nullptr) {
    metrics_->CountRequest(rpc,
                           absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())));
  }
  return s;
}

grpc::Status AdminService::ListCheckpoints(grpc::ServerContext* ctx,
                                           const v1::ListCheckpointsRequest*,
                                           v1::ListCheckpointsResponse* resp) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("ListCheckpoints", a);
  for (const auto& [m, active] : registry_->All())
    FillCheckpoint(*m, active, resp->add_checkpoints());
  return Done("ListCheckpoints", grpc::Status::OK);
}

namespace {
// Publishes `model`'s active checkpoint as linvideo_checkpoint_info. The registry is read and the
// gauge set under one lock, after the caller's own flip: a Load and a Rollback finishing at once
// leave the gauge on the checkpoint that is active last (setting the version each call had flipped
// to could leave the loser's on show).
void PublishActiveCheckpoint(const ModelRegistry& registry, Metrics* metrics,
                             const std::string& model) {
  ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  auto m = registry.Get(model);
  if (m.ok()) metrics->SetCheckpoint((*m)->name, (*m)->version, (*m)->path);
}
}  // namespace

absl::StatusOr<std::shared_ptr<const LoadedModel>> ActivateCheckpoint(ModelRegistry* registry,
                                                                      Metrics* metrics,
                                                                      const std::string& model,
                                                                      const std::string& path) {
  auto m = registry->Load(model, path);
  if (metrics != nullptr) metrics->CountSwap(model, m.ok());
  if (!m.ok()) {
    LV_LOG(WARNING) << "checkpoint load refused model=" << model << " path=" << path << ": "
                    << m.status();
    return m.status();
  }
  if (metrics != nullptr) PublishActiveCheckpoint(*registry, metrics, (*m)->name);
  LV_LOG(INFO) << "checkpoint active model=" << (*m)->name << " version=" << (*m)->version
               << " path=" << (*m)->path;
  return m;
}

grpc::Status AdminService::LoadCheckpoint(grpc::ServerContext* ctx,
                                          const v1::LoadCheckpointRequest* req,
                                          v1::LoadCheckpointResponse* resp) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("LoadCheckpoint", a);
  const absl::Time t0 = absl::Now();
  auto m = ActivateCheckpoint(registry_, metrics_, req->model(), req->path());
  if (!m.ok()) return Done("LoadCheckpoint", ToGrpc(m.status()));
  FillCheckpoint(**m, true, resp->mutable_checkpoint());
  resp->set_load_seconds(absl::ToDoubleSeconds(absl::Now() - t0));
  return Done("LoadCheckpoint", grpc::Status::OK);
}

grpc::Status AdminService::Rollback(grpc::ServerContext* ctx, const v1::RollbackRequest* req,
                                    v1::RollbackResponse* resp) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("Rollback", a);
  int64_t from = 0;
  auto m = registry_->Rollback(req->model(), &from);
  if (!m.ok()) return Done("Rollback", ToGrpc(m.status()));
  if (metrics_ != nullptr) {
    metrics_->CountSwap((*m)->name, true);
    PublishActiveCheckpoint(*registry_, metrics_, (*m)->name);
  }
  // The operator rolled `from` back: what is queued on it and has not started runs on the
  // restored checkpoint instead (and no longer keeps `from` loaded).
  const int moved = engine_->MoveQueued(from, *m);
  // WARNING: a rollback says a checkpoint was bad; kept in quiet logs (LINVIDEO_LOG_QUIET).
  LV_LOG(WARNING) << "rollback model=" << (*m)->name << " v" << from << " -> v" << (*m)->version
                  << ", " << moved << " queued request(s) moved";
  FillCheckpoint(**m, true, resp->mutable_checkpoint());
  return Done("Rollback", grpc::Status::OK);
}

grpc::Status AdminService::Drain(grpc::ServerContext* ctx, const v1::DrainRequest* req,
                                 v1::DrainResponse* resp) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("Drain", a);
  {
    absl::MutexLock lock(&serving_mu_);
    engine_->Drain();
    set_serving_(false);
  }
  int remaining = engine_->Outstanding();
  if (req->wait()) remaining = engine_->WaitIdle(absl::Seconds(grace_s_));
  resp->set_remaining(remaining);
  on_drain_();
  return Done("Drain", grpc::Status::OK);
}

grpc::Status AdminService::Pause(grpc::ServerContext* ctx, const v1::PauseRequest*,
                                 v1::PauseResponse*) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("Pause", a);
  absl::MutexLock lock(&serving_mu_);
  engine_->Pause(true);
  set_serving_(false);
  return Done("Pause", grpc::Status::OK);
}

grpc::Status AdminService::Resume(grpc::ServerContext* ctx, const v1::ResumeRequest*,
                                  v1::ResumeResponse*) {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return Done("Resume", a);
  absl::MutexLock lock(&serving_mu_);
  if (engine_->draining()) {
    return Done("Resume", grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                       "server is draining; cannot resume"));
  }
  engine_->Pause(false);
  set_serving_(true);
  return Done("Resume", grpc::Status::OK);
}

}  // namespace linvideo::server
