#include "server/jobs_service.h"

#include "absl/strings/str_cat.h"
#include "server/services.h"

namespace linvideo::server {

void ToProto(const JobSnapshot& j, v1::Job* out) {
  out->set_id(j.id);
  out->set_kind(JobKindName(j.spec.kind));
  v1::JobSpec* s = out->mutable_spec();
  s->set_job_id(j.spec.job_id);
  s->set_base(j.spec.base);
  if (j.spec.kind == JobKind::kDistill) {
    const DistillJobOptions& o = j.spec.distill;
    v1::DistillJob* d = s->mutable_distill();
    for (int64_t t : o.timesteps) d->add_timesteps(static_cast<int32_t>(t));
    d->set_steps(o.steps);
    d->set_fake_updates(static_cast<int32_t>(o.fake_updates));
    d->set_real_guidance(o.real_guidance);
    d->set_real(o.real);
    d->set_lr(o.lr);
    d->set_fake_lr(o.fake_lr);
    d->set_seed(o.seed);
    d->set_batch(static_cast<int32_t>(o.batch));
    d->set_trajectories(static_cast<int32_t>(o.trajectories));
    d->set_trajectory_steps(static_cast<int32_t>(o.trajectory_steps));
    d->set_checkpoint_every(static_cast<int32_t>(o.checkpoint_every));
  }
  v1::ConvertJob* c = j.spec.kind == JobKind::kConvert ? s->mutable_convert() : nullptr;
  if (c != nullptr) {
    c->set_linear_layers(static_cast<int32_t>(j.spec.convert.linear_layers));
    c->set_select(j.spec.convert.select);
    c->set_pinned(j.spec.convert.pinned);
    c->set_objective(j.spec.convert.objective);
    c->set_steps(j.spec.convert.steps);
    c->set_lr(j.spec.convert.lr);
    c->set_seed(j.spec.convert.seed);
    c->set_batch(static_cast<int32_t>(j.spec.convert.batch));
    c->set_trajectories(static_cast<int32_t>(j.spec.convert.trajectories));
    c->set_trajectory_steps(static_cast<int32_t>(j.spec.convert.trajectory_steps));
    c->set_checkpoint_every(static_cast<int32_t>(j.spec.convert.checkpoint_every));
  }
  s->set_output_name(j.spec.output_name);
  s->set_activate(j.spec.activate);
  s->set_activate_as(j.spec.activate_as);
  v1::QualityGate* g = s->mutable_gate();
  g->set_prompts(j.spec.gate.prompts);
  g->set_seeds(static_cast<int32_t>(j.spec.gate.seeds));
  g->set_steps(static_cast<int32_t>(j.spec.gate.steps));
  for (const auto& [k, v] : j.spec.gate.max_drop) (*g->mutable_max_drop())[k] = v;
  g->set_min_psnr(j.spec.gate.min_psnr);
  out->set_state(static_cast<v1::JobState>(static_cast<int>(j.state) + 1));
  v1::JobProgress* p = out->mutable_progress();
  p->set_stage(j.progress.stage);
  p->set_step(j.progress.step);
  p->set_total(j.progress.total);
  p->set_fraction(j.progress.fraction);
  p->set_eta_s(j.progress.eta_s);
  for (const auto& [k, v] : j.progress.losses) (*p->mutable_losses())[k] = v;
  for (int64_t l : j.progress.gate_layers) p->add_gate_layers(static_cast<int32_t>(l));
  for (double r : j.progress.r) p->add_r(r);
  out->set_error(j.error);
  out->set_attempts(static_cast<int32_t>(j.attempts));
  out->set_output_path(j.output_path);
  out->set_checkpoint_version(j.checkpoint_version);
  for (const auto& [k, v] : j.base_scores) (*out->mutable_base_scores())[k] = v;
  for (const auto& [k, v] : j.output_scores) (*out->mutable_output_scores())[k] = v;
  out->set_created_unix_ms(j.created_ms);
  out->set_started_unix_ms(j.started_ms);
  out->set_finished_unix_ms(j.finished_ms);
  out->set_disk_bytes(j.disk_bytes);
  out->set_log_tail(j.log_tail);
}

grpc::Status JobsService::Done(const char* rpc, grpc::Status s) {
  if (metrics_ != nullptr) {
    metrics_->CountRequest(rpc,
                           absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())));
  }
  return s;
}

grpc::Status JobsService::Check(grpc::ServerContext* ctx) const {
  if (auto a = CheckBearer(ctx, token_); !a.ok()) return a;
  if (jobs_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "post-training jobs are off on this server: start it with "
                        "--jobs.root=DIR (and --checkpoint_root=DIR)");
  }
  return grpc::Status::OK;
}

grpc::Status JobsService::StartJob(grpc::ServerContext* ctx, const v1::StartJobRequest* req,
                                   v1::Job* resp) {
  if (auto c = Check(ctx); !c.ok()) return Done("StartJob", c);
  if (req->spec().kind_case() == v1::JobSpec::KIND_NOT_SET) {
    return Done("StartJob", grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                         "spec has no job kind: set one of: convert, distill"));
  }
  auto job = jobs_->Start(FromProto(req->spec()));
  if (!job.ok()) return Done("StartJob", ToGrpc(job.status()));
  ToProto(*job, resp);
  return Done("StartJob", grpc::Status::OK);
}

grpc::Status JobsService::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                                 v1::Job* resp) {
  if (auto c = Check(ctx); !c.ok()) return Done("GetJob", c);
  auto job = jobs_->Get(req->id());
  if (!job.ok()) return Done("GetJob", ToGrpc(job.status()));
  ToProto(*job, resp);
  return Done("GetJob", grpc::Status::OK);
}

grpc::Status JobsService::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                   v1::ListJobsResponse* resp) {
  if (auto c = Check(ctx); !c.ok()) return Done("ListJobs", c);
  std::optional<JobState> state;
  if (req->state() != v1::JOB_STATE_UNSPECIFIED) {
    if (!v1::JobState_IsValid(req->state())) {
      return Done("ListJobs",
                  grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "state: not a JobState"));
    }
    state = static_cast<JobState>(static_cast<int>(req->state()) - 1);
  }
  for (const JobSnapshot& j : jobs_->List(state)) ToProto(j, resp->add_jobs());
  return Done("ListJobs", grpc::Status::OK);
}

grpc::Status JobsService::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                   grpc::ServerWriter<v1::Job>* writer) {
  if (auto c = Check(ctx); !c.ok()) return Done("WatchJob", c);
  auto job = jobs_->Get(req->id());
  if (!job.ok()) return Done("WatchJob", ToGrpc(job.status()));
  while (true) {
    v1::Job out;
    ToProto(*job, &out);
    if (!writer->Write(out)) return Done("WatchJob", grpc::Status::CANCELLED);
    if (IsTerminal(job->state)) return Done("WatchJob", grpc::Status::OK);
    const int64_t seen = job->revision;
    do {
      if (ctx->IsCancelled()) return Done("WatchJob", grpc::Status::CANCELLED);
      job = jobs_->WaitForChange(req->id(), seen, absl::Seconds(1));
      if (!job.ok()) return Done("WatchJob", ToGrpc(job.status()));
    } while (job->revision == seen);
  }
}

grpc::Status JobsService::CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                                    v1::Job* resp) {
  if (auto c = Check(ctx); !c.ok()) return Done("CancelJob", c);
  auto job = jobs_->Cancel(req->id());
  if (!job.ok()) return Done("CancelJob", ToGrpc(job.status()));
  ToProto(*job, resp);
  return Done("CancelJob", grpc::Status::OK);
}

}  // namespace linvideo::server
