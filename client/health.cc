// `linvideo health [--service=NAME]`: one grpc.health.v1.Health/Check, for container health checks
// and readiness probes. Exit 0 only when the answer is SERVING.
#include <iostream>

#include "client/cli.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace linvideo::client {

namespace {
// A probe should answer fast: without --timeout the call gets 5 s, not the CLI's 600 s default.
constexpr double kHealthTimeoutS = 5;
}  // namespace

int CmdHealth(const Args& a) {
  Client c = Connect(a);
  auto stub = grpc::health::v1::Health::NewStub(c.channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(a.Get("service"));  // "" = the server as a whole
  grpc::health::v1::HealthCheckResponse resp;
  auto ctx = c.Context(a.Has("timeout") ? -1 : kHealthTimeoutS);
  // A service the server does not know is NOT_FOUND; an unreachable server UNAVAILABLE.
  grpc::Status st = stub->Check(ctx.get(), req, &resp);
  if (!st.ok()) return Fail(st);
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  // NOT_SERVING (paused, draining) or UNKNOWN: the server answers but takes no new work, which is
  // what UNAVAILABLE (14) means for every other command.
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 14;
}

}  // namespace linvideo::client
