#pragma once
// Shared pieces of the `linvideo` CLI: flag parsing, the channel, call contexts with deadlines and
// the bearer token, and request building. Single-threaded except Bench (see bench.cc).

#include <grpcpp/grpcpp.h>

#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "linvideo/v1/admin.grpc.pb.h"
#include "linvideo/v1/generation.grpc.pb.h"
#include "linvideo/v1/jobs.grpc.pb.h"

namespace linvideo::client {

// --name=value flags (a bare --name means "true") and positional words.
struct Args {
  std::map<std::string, std::string> flags;
  std::vector<std::string> words;
  std::string Get(const std::string& name, const std::string& def = "") const;
  double Num(const std::string& name, double def) const;
  // Integer flags: a value that is not an integer in [min, max] (e.g. --width=32.5,
  // --seed=-1) exits 64 saying so instead of being truncated or wrapped.
  int64_t Int(const std::string& name, int64_t def, int64_t min = INT32_MIN,
              int64_t max = INT32_MAX) const;
  uint64_t Uint64(const std::string& name, uint64_t def) const;  // seeds: all 64 bits
  bool Has(const std::string& name) const { return flags.count(name) > 0; }
};
Args ParseArgs(int argc, char** argv, int first);

struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Generation::Stub> generation;
  std::unique_ptr<v1::Admin::Stub> admin;
  std::unique_ptr<v1::Jobs::Stub> jobs;
  std::string token;
  double timeout_s = 600;
  // A context with the deadline (every call has one) and the token, if any.
  std::unique_ptr<grpc::ClientContext> Context(double timeout_s = -1) const;
};
// Uses --server, --tls_ca, --token/--token_file, --timeout. Exits on unusable settings.
Client Connect(const Args& args);

// Builds a GenerateRequest from --prompt, --width, ... ; returns false with `error` set.
bool BuildRequest(const Args& args, v1::GenerateRequest* req, std::string* error);

// Prints "error: CODE: message" and returns the exit code for a failed RPC (the gRPC code).
int Fail(const grpc::Status& status);

int CmdGenerate(const Args& args);
int CmdSubmit(const Args& args);
int CmdStatus(const Args& args);
int CmdCancel(const Args& args);
int CmdModels(const Args& args);
int CmdAdmin(const Args& args);
int CmdBench(const Args& args);
int CmdJobs(const Args& args);
int CmdHealth(const Args& args);  // health.cc

// Consumes a Generate stream; writes the video (or PNG frames to a folder) when `out` is non-empty.
// `progress`: print queue position / step progress to stderr. Returns the call's status.
grpc::Status RunGenerate(const Client& client, const v1::GenerateRequest& req,
                         const std::string& out, bool progress, std::string* video = nullptr,
                         v1::Stats* stats = nullptr);

}  // namespace linvideo::client
