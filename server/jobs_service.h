#pragma once
// linvideo.v1.Jobs: the gRPC face of the JobManager (same bearer token as Admin). Handlers
// convert the protos to server/job_spec.h structs and back, and never wait on a child; WatchJob
// streams the job's snapshots until it ends or the client goes away.
// Thread safety: gRPC calls the handlers from its thread pool; all state lives in the manager.

#include <grpcpp/grpcpp.h>

#include <string>

#include "linvideo/v1/jobs.grpc.pb.h"
#include "server/bearer_token.h"
#include "server/job_manager.h"
#include "server/metrics.h"
#include "server/proto_convert.h"

namespace linvideo::server {

class JobsService final : public linvideo::v1::Jobs::Service {
 public:
  // `jobs` null: every call is FAILED_PRECONDITION (jobs.root not set).
  JobsService(JobManager* jobs, Metrics* metrics, const BearerToken* token)
      : jobs_(jobs), metrics_(metrics), token_(token) {}

  grpc::Status StartJob(grpc::ServerContext* ctx, const v1::StartJobRequest* req,
                        v1::Job* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::Job>* writer) override;
  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                         v1::Job* resp) override;

 private:
  grpc::Status Check(grpc::ServerContext* ctx) const;
  grpc::Status Done(const char* rpc, grpc::Status s);
  JobManager* jobs_;
  Metrics* metrics_;
  const BearerToken* token_;
};

void ToProto(const JobSnapshot& job, v1::Job* out);

}  // namespace linvideo::server
