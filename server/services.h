#pragma once
// gRPC services: linvideo.v1.Generation and linvideo.v1.Admin (sync API). Handlers validate,
// enqueue into the Engine and return (or stream the request's events); they never run the model.
// absl::Status codes map 1:1 onto grpc::StatusCode here, the one place they are converted.
// Thread safety: gRPC calls the handlers from its thread pool; all state lives in Engine/Registry.

#include <grpcpp/grpcpp.h>

#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "linvideo/v1/admin.grpc.pb.h"
#include "linvideo/v1/generation.grpc.pb.h"
#include "server/bearer_token.h"
#include "server/engine.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/rate_limiter.h"
#include "server/replica_router.h"
#include "server/stream_limiter.h"

namespace linvideo::server {

grpc::Status ToGrpc(const absl::Status& s);
// Checks "authorization: Bearer <token>"; a null or disabled `token` allows everything.
grpc::Status CheckBearer(const grpc::ServerContext* ctx, const BearerToken* token);

class GenerationService final : public linvideo::v1::Generation::Service {
 public:
  // `token` null: no auth on Generation; `limiter` null: no per-peer rate; `streams` null: no
  // per-connection stream limit; `router` null: a single replica (Get and Cancel never forward).
  // All must outlive the service.
  GenerationService(Engine* engine, ModelRegistry* registry, Metrics* metrics,
                    const BearerToken* token, RateLimiter* limiter = nullptr,
                    StreamLimiter* streams = nullptr, ReplicaRouter* router = nullptr,
                    int max_message_bytes = 8 << 20)
      : engine_(engine),
        registry_(registry),
        metrics_(metrics),
        token_(token),
        limiter_(limiter),
        streams_(streams),
        router_(router),
        max_result_part_(max_message_bytes - kMessageHeadroom) {}

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateEvent>* writer) override;
  grpc::Status Submit(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                      v1::SubmitResponse* resp) override;
  grpc::Status Get(grpc::ServerContext* ctx, const v1::GetRequest* req,
                   v1::GetResponse* resp) override;
  grpc::Status Cancel(grpc::ServerContext* ctx, const v1::CancelRequest* req,
                      v1::CancelResponse* resp) override;
  grpc::Status ListModels(grpc::ServerContext* ctx, const v1::ListModelsRequest* req,
                          v1::ListModelsResponse* resp) override;

 private:
  grpc::Status Done(const char* rpc, grpc::Status s);
  // Auth, then the caller's address against the per-peer rate (Generate and Submit).
  grpc::Status Admit(grpc::ServerContext* ctx);
  absl::StatusOr<SubmitOptions> Convert(const grpc::ServerContext* ctx,
                                        const v1::GenerateRequest& req, bool streaming);
  Engine* engine_;
  ModelRegistry* registry_;
  Metrics* metrics_;
  const BearerToken* token_;
  RateLimiter* limiter_;
  StreamLimiter* streams_;
  ReplicaRouter* router_;
  // The most result bytes one Get response carries: the message limit less room for the other
  // fields (the config requires limits.max_message_bytes >= 1 MiB + 4 KiB).
  static constexpr int kMessageHeadroom = 4096;
  const int64_t max_result_part_;
  // Get's result field: the whole result or the part asked for (GetRequest paging).
  grpc::Status SetResult(const std::vector<std::string>& blobs, const v1::GetRequest& req,
                         v1::GetResponse* resp) const;
  // A stored result for a paged Get (result_max_bytes > 0): read and checksummed once, then kept
  // while its request lives, among the last kPagedResults loaded (at most kPagedBytes together),
  // so a client reading a large video part by part does not make the server read the whole file
  // once per part. A part asked for after the file was evicted still comes from here.
  absl::StatusOr<std::shared_ptr<const EncodedOutput>> PagedResult(
      const std::shared_ptr<ServeRequest>& r, const std::string& file);
  struct PagedEntry {
    std::weak_ptr<ServeRequest> request;
    std::string file;
    std::shared_ptr<const EncodedOutput> out;
  };
  static constexpr size_t kPagedResults = 4;
  static constexpr int64_t kPagedBytes = 256 << 20;
  absl::Mutex paged_mu_;
  std::list<PagedEntry> paged_ ABSL_GUARDED_BY(paged_mu_);  // most recent first
  // Get/Cancel of another replica's request: forwarded there; nullopt when it is this replica's.
  template <typename Req, typename Resp, typename Call>
  std::optional<grpc::Status> Forward(grpc::ServerContext* ctx, const char* method, const Req& req,
                                      Resp* resp, Call call);
};

class AdminService final : public linvideo::v1::Admin::Service {
 public:
  // `on_drain` is called (once) after Drain has stopped admission, to shut the process down.
  AdminService(Engine* engine, ModelRegistry* registry, Metrics* metrics, const BearerToken* token,
               std::function<void(bool serving)> set_serving, std::function<void()> on_drain,
               int grace_s)
      : engine_(engine),
        registry_(registry),
        metrics_(metrics),
        token_(token),
        set_serving_(std::move(set_serving)),
        on_drain_(std::move(on_drain)),
        grace_s_(grace_s) {}

  grpc::Status ListCheckpoints(grpc::ServerContext* ctx, const v1::ListCheckpointsRequest* req,
                               v1::ListCheckpointsResponse* resp) override;
  grpc::Status LoadCheckpoint(grpc::ServerContext* ctx, const v1::LoadCheckpointRequest* req,
                              v1::LoadCheckpointResponse* resp) override;
  grpc::Status Rollback(grpc::ServerContext* ctx, const v1::RollbackRequest* req,
                        v1::RollbackResponse* resp) override;
  grpc::Status Drain(grpc::ServerContext* ctx, const v1::DrainRequest* req,
                     v1::DrainResponse* resp) override;
  grpc::Status Pause(grpc::ServerContext* ctx, const v1::PauseRequest* req,
                     v1::PauseResponse* resp) override;
  grpc::Status Resume(grpc::ServerContext* ctx, const v1::ResumeRequest* req,
                      v1::ResumeResponse* resp) override;

 private:
  grpc::Status Done(const char* rpc, grpc::Status s);
  // Auth, then the caller's address against the per-peer rate (Generate and Submit).
  grpc::Status Admit(grpc::ServerContext* ctx);
  Engine* engine_;
  ModelRegistry* registry_;
  Metrics* metrics_;
  const BearerToken* token_;
  std::function<void(bool)> set_serving_;
  std::function<void()> on_drain_;
  int grace_s_;
  // Drain, Pause and Resume change the engine's admission and the health status together: a
  // Resume racing a Drain must not leave the server draining but reported SERVING.
  absl::Mutex serving_mu_;
};

// Admin.LoadCheckpoint's path, also taken by jobs that activate their output: load `path` (under
// the checkpoint root) beside the active model as `model`, warm up, swap; metrics and log lines.
absl::StatusOr<std::shared_ptr<const LoadedModel>> ActivateCheckpoint(ModelRegistry* registry,
                                                                      Metrics* metrics,
                                                                      const std::string& model,
                                                                      const std::string& path);

// Fills `info` from a loaded model.
void FillCheckpoint(const LoadedModel& m, bool active, v1::CheckpointInfo* info);

}  // namespace linvideo::server
