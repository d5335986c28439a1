#pragma once
// Wire -> core structs for the requests clients send: a GenerateRequest becomes the engine's
// SubmitOptions (refusing numbers a client cannot mean: NaN, infinities, -0, unknown enum values),
// a v1::JobSpec the job manager's JobSpec. Only the protobuf runtime is needed (no gRPC, no
// LibTorch), so tests/fuzz/ fuzzes both from raw proto bytes.

#include "absl/status/statusor.h"
#include "linvideo/v1/generation.pb.h"
#include "linvideo/v1/jobs.pb.h"
#include "server/engine.h"
#include "server/job_spec.h"

namespace linvideo::server {

// The request's fields as SubmitOptions (deadline not set: it is the call's, not the message's).
// Parameters stay unresolved (0 / kUseDefault: the model's default); Engine::Submit resolves them
// against the model. INVALID_ARGUMENT names the field and what is allowed.
absl::StatusOr<SubmitOptions> SubmitOptionsFromProto(const v1::GenerateRequest& req,
                                                     bool streaming);

// Field by field; ValidateJobSpec (server/job_spec.h) judges the result.
JobSpec FromProto(const v1::JobSpec& spec);

}  // namespace linvideo::server
