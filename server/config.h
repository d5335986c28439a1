#pragma once
// ServerConfig: the one typed configuration of linvideo-server, parsed once from a JSON file
// (--config=FILE) and/or flags (flags win), validated by Validate(), then immutable and passed by
// const&. Every option has a dotted name used both as a flag (--scheduler.max_batch=4) and as a
// path in the JSON file ({"scheduler": {"max_batch": 4}}). ServerConfigHelp() lists them all.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace linvideo::server {

struct ModelSpec {
  std::string name;
  std::string path;
};

struct ServerConfig {
  // Not an option: the names of the options a flag or --config set (e.g. an explicit
  // scheduler.max_batch caps what auto_budget derives).
  std::set<std::string> given;
  std::string listen = "127.0.0.1:50051";  // host:port; port 0 picks a free port
  std::string port_file;                   // if set, the bound gRPC port is written here
  std::vector<ModelSpec> models;           // --model=NAME=DIR (repeatable); first is the default
  std::string checkpoint_root;             // Admin LoadCheckpoint paths must lie inside it
  // Submit'ed requests are journaled here and their results stored until their TTL, so they
  // survive a crash or restart (server/request_journal.h); empty: in memory only.
  std::string state_dir;
  // The address other replicas reach this one at, HOST[:PORT] (replica_router.h); empty: a single
  // replica. Generated request ids then name it, and Get/Cancel of another replica's id forward.
  std::string replica_advertise;
  std::string executor = "pipeline";  // pipeline | fake (deterministic, for tests)
  std::string device = "cpu";
  std::string dtype = "fp32";
  std::string vae_dtype;  // the VAE's precision; empty: fp32
  int threads = 0;        // LibTorch intra-op threads, 0 = all cores

  struct Scheduler {
    int max_batch = 4;
    int64_t token_budget = 0;  // latent tokens x CFG passes per step, 0 = unlimited
    int max_queue = 64;
    int max_queue_delay_ms = 20;
    int starvation_age_s = 30;
    // Clean steps after which a step limit learned from an out-of-memory batch is lifted.
    int limit_probe_steps = 200;
    // On a CUDA device: token_budget and max_batch come from device memory measured at start
    // (server/memory_budget.h), leaving memory_margin_pct of the device free; the values above
    // are then replaced, or capped where given explicitly (logged). Ignored on the CPU, where
    // batching is bounded by cores.
    bool auto_budget = true;
    int memory_margin_pct = 10;
    // Set by auto_budget (not an option): each model's own step budget, which replaces
    // token_budget for its requests (a step runs one model; their per-token costs differ).
    std::map<std::string, int64_t> model_token_budgets;
  } scheduler;

  struct Limits {
    int max_prompt_chars = 2000;
    int64_t max_cost = 0;  // tokens x steps x CFG passes per request, 0 = unlimited
    int result_ttl_s = 600;
    // Results kept (in state_dir, or in memory without one), all requests together; the oldest
    // are evicted first.
    int max_stored_results_mb = 2048;
    // Finished requests remembered for Get (their state, error, result) within result_ttl_s; the
    // oldest are forgotten first. Bounds the table when many calls end quickly.
    int max_finished_requests = 10000;
    int max_message_bytes = 8 << 20;
    int workers = 2;  // decode + encode worker threads
    // Threads one request's PNG frames are encoded on (0: auto, ResolveEncodeThreads: 1 on the CPU;
    // on CUDA half the usable cores over `workers`, 1..8).
    int encode_threads = 0;
    int text_cache_entries = 256;
    // Device memory each loaded checkpoint's text-embedding cache may hold (a Wan 1.3B prompt's
    // states are 512 x 4096 fp32 = 8 MiB); scheduler.auto_budget reserves it.
    int text_cache_mb = 256;
    // Replaced checkpoints of each model kept loaded for Rollback; older ones are freed once the
    // requests that pinned them finish (bounded memory across hot swaps).
    int keep_previous_checkpoints = 1;
    // Generate and Submit calls admitted per client address (server/rate_limiter.h); 0 = no limit.
    int requests_per_minute_per_peer = 0;
    int burst_per_peer = 20;
    // Streaming Generate calls one client connection may hold open (server/stream_limiter.h);
    // 0 = no limit. Must not exceed grpc.max_streams.
    int max_streams_per_connection = 64;
    // Run VAE decode concurrently with denoising steps. Off by default: on a CPU both compete for
    // the same cores and LibTorch's thread pools oversubscribe badly; turn on for GPUs.
    bool overlap_decode = false;
  } limits;

  struct Metrics {
    std::string listen = "127.0.0.1:9464";  // empty disables /metrics
    std::string port_file;
  } metrics;

  struct Tls {
    std::string cert_file, key_file;  // both or neither
    std::string client_ca_file;       // set: client certificates are required
  } tls;

  struct Auth {
    std::string admin_token_file;  // set: Admin needs "authorization: Bearer <token>"
    bool generation = false;       // also require the token on Generation
  } auth;

  struct Grpc {
    int keepalive_time_ms = 30000;
    int keepalive_timeout_ms = 10000;
    int max_streams = 256;
    // > 0: a connection is closed (GOAWAY; calls in flight finish) after this many seconds, so
    // clients re-resolve a headless Service and reach replicas added since. 0: never.
    int max_connection_age_s = 0;
  } grpc;

  // Post-training jobs (linvideo.v1.Jobs): child processes of linvideo-train / linvideo-eval.
  struct Jobs {
    std::string root;            // job folders; empty: the Jobs service is off
    std::string train_binary;    // empty: linvideo-train next to linvideo-server (or ../tools/)
    std::string eval_binary;     // empty: linvideo-eval, found the same way
    int threads = 0;             // LibTorch threads per job; 0: the number of jobs.cpus (else 1)
    int processes = 1;           // data-parallel processes per training stage (Gloo)
    std::string cpus;            // CPU affinity of jobs, e.g. "1" or "2-3"; empty: inherit
    int nice = 10;               // added to a job's nice level
    std::string device = "cpu";  // where jobs train: cpu, cuda, cuda:N
    int max_concurrent = 1;      // more jobs queue
    int max_retries = 2;         // restarts from the last checkpoint after a signal/OOM kill
    int keep_finished = 20;      // finished job folders kept (oldest removed first)
    int finished_ttl_h = 168;    // finished job folders older than this are removed
    int cancel_grace_s = 10;     // SIGTERM -> SIGKILL
  } jobs;

  int drain_grace_s = 30;  // SIGTERM/Drain: in-flight work gets this long to finish

  // INVALID_ARGUMENT naming the option, the value and what is allowed.
  absl::Status Validate() const;
};

// Parses `--help` (returns NOT_FOUND-free OK config with help_requested), --config=FILE and flags.
struct ParsedConfig {
  ServerConfig config;
  bool help = false;
};
// A served model's name: 1-64 characters from [A-Za-z0-9._-], not "." or ".." (it is matched
// against requests and appears in metric labels, logs, scheduler buckets and job folders).
// INVALID_ARGUMENT saying what is allowed otherwise; `where` prefixes the message.
absl::Status ValidateModelName(const std::string& name, const std::string& where);

absl::StatusOr<ParsedConfig> ParseServerConfig(const std::vector<std::string>& args);
// Applies a --config file's text (a JSON object; nested objects are dotted option names, "models"
// is NAME -> DIR or a list of {"name", "path"}) over `config`. `source` names it in errors.
// INVALID_ARGUMENT says what is wrong; does not Validate().
absl::Status ApplyConfigText(std::string_view text, const std::string& source,
                             ServerConfig& config);

// Whether a --listen address only accepts local connections (127.x, [::1], localhost, unix:).
bool IsLoopbackListen(const std::string& listen);
std::string ServerConfigHelp();

}  // namespace linvideo::server
