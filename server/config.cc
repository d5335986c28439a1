#include "server/config.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/io/file_util.h"
#include "core/io/json_file.h"
#include "server/job_spec.h"
#include "server/replica_router.h"

namespace linvideo::server {
namespace {

// A config file is a few KiB of JSON; a much larger file is not one.
constexpr uint64_t kMaxConfigBytes = 1 << 20;
// Option names have at most two dots ("jobs.max_retries"); deeper nesting names no option.
constexpr int kMaxConfigDepth = 4;

struct Option {
  std::string name;
  std::string help;
  std::function<absl::Status(ServerConfig&, const std::string&)> set;
  std::function<std::string(const ServerConfig&)> get;
};

template <typename T>
Option Num(std::string name, std::string help, std::function<T&(ServerConfig&)> ref) {
  Option o;
  o.name = name;
  o.help = std::move(help);
  o.set = [name, ref](ServerConfig& c, const std::string& v) -> absl::Status {
    T out{};
    bool ok;
    if constexpr (std::is_same_v<T, bool>) {
      ok = absl::SimpleAtob(v, &out);
    } else {
      ok = absl::SimpleAtoi(v, &out);
    }
    if (!ok)
      return absl::InvalidArgumentError(absl::StrCat("--", name, "=", v, ": not a valid ",
                                                     std::is_same_v<T, bool> ? "bool" : "integer"));
    ref(c) = out;
    return absl::OkStatus();
  };
  o.get = [ref](const ServerConfig& c) -> std::string {
    const T v = ref(const_cast<ServerConfig&>(c));
    if constexpr (std::is_same_v<T, bool>) {
      return v ? "true" : "false";
    } else {
      return absl::StrCat(v);
    }
  };
  return o;
}

#define LV_INT(name, field, help)      \
  Num<decltype(ServerConfig{}.field)>( \
      name, help, [](ServerConfig & c) -> auto& { return c.field; })

Option Str(std::string name, std::string help, std::function<std::string&(ServerConfig&)> ref) {
  Option o;
  o.name = std::move(name);
  o.help = std::move(help);
  o.set = [ref](ServerConfig& c, const std::string& v) {
    ref(c) = v;
    return absl::OkStatus();
  };
  o.get = [ref](const ServerConfig& c) { return ref(const_cast<ServerConfig&>(c)); };
  return o;
}
#define LV_STR(name, field, help) \
  Str(name, help, [](ServerConfig& c) -> std::string& { return c.field; })

const std::vector<Option>& Options() {
  static const std::vector<Option> options = {
      LV_STR("listen", listen, "gRPC address host:port (port 0: any free port)"),
      LV_STR("replica.advertise", replica_advertise,
             "HOST[:PORT] other replicas reach this one at (e.g. the pod IP); request ids name "
             "it and Get/Cancel of other replicas' ids are forwarded (empty: one replica)"),
      LV_STR("port_file", port_file, "write the bound gRPC port to this file"),
      Option{"model", "NAME=DIR: serve the model folder DIR as NAME (repeatable; first is default)",
             [](ServerConfig& c, const std::string& v) -> absl::Status {
               const size_t eq = v.find('=');
               if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
                 return absl::InvalidArgumentError(
                     absl::StrCat("--model=", v, ": expected NAME=DIR"));
               }
               c.models.push_back({v.substr(0, eq), v.substr(eq + 1)});
               return absl::OkStatus();
             },
             [](const ServerConfig& c) {
               std::string s;
               for (const auto& m : c.models)
                 absl::StrAppend(&s, s.empty() ? "" : ",", m.name, "=", m.path);
               return s;
             }},
      LV_STR("checkpoint_root", checkpoint_root,
             "Admin LoadCheckpoint paths must lie inside this folder"),
      LV_STR("state_dir", state_dir,
             "Submit'ed requests are journaled here and their results stored until their TTL, "
             "so they survive a crash or restart (empty: in memory only)"),
      LV_STR("executor", executor, "pipeline (the Wan runtime) or fake (deterministic, for tests)"),
      LV_STR("device", device, "cpu, cuda, cuda:N"),
      LV_STR("dtype", dtype, "fp32, bf16 (fp16 is not offered)"),
      LV_STR("vae_dtype", vae_dtype,
             "the VAE's precision: fp32, bf16 (empty: fp32, whatever --dtype is); bf16 "
             "decodes faster on CPUs with AVX512-BF16"),
      LV_INT(
          "threads", threads,
          "LibTorch intra-op threads (0: every core this process may use, cgroup quota included)"),
      LV_INT("scheduler.max_batch", scheduler.max_batch, "most requests stepped together"),
      LV_INT("scheduler.token_budget", scheduler.token_budget,
             "latent tokens x CFG passes per step (0: unlimited)"),
      LV_INT("scheduler.auto_budget", scheduler.auto_budget,
             "on CUDA: derive token_budget and max_batch from device memory measured at start "
             "(values given explicitly cap what is derived; false: use them as given)"),
      LV_INT("scheduler.memory_margin_pct", scheduler.memory_margin_pct,
             "percent of device memory auto_budget leaves free (0..90)"),
      LV_INT("scheduler.max_queue", scheduler.max_queue,
             "queued requests before RESOURCE_EXHAUSTED"),
      LV_INT("scheduler.max_queue_delay_ms", scheduler.max_queue_delay_ms,
             "how long a new batch is held open for companions"),
      LV_INT("scheduler.starvation_age_s", scheduler.starvation_age_s,
             "seconds of waiting worth one priority level"),
      LV_INT("scheduler.limit_probe_steps", scheduler.limit_probe_steps,
             "clean steps after which a step limit learned from an out-of-memory batch is lifted"),
      LV_INT("limits.max_prompt_chars", limits.max_prompt_chars, "longest prompt accepted"),
      LV_INT("limits.max_cost", limits.max_cost,
             "tokens x steps x CFG passes per request (0: unlimited); above: RESOURCE_EXHAUSTED"),
      LV_INT("limits.keep_previous_checkpoints", limits.keep_previous_checkpoints,
             "replaced checkpoints per model kept loaded for Rollback (older ones are freed)"),
      LV_INT("limits.requests_per_minute_per_peer", limits.requests_per_minute_per_peer,
             "Generate/Submit calls admitted per client address per minute (0: unlimited); "
             "above: RESOURCE_EXHAUSTED"),
      LV_INT("limits.burst_per_peer", limits.burst_per_peer,
             "calls a client address may make at once before the per-minute rate applies"),
      LV_INT("limits.max_streams_per_connection", limits.max_streams_per_connection,
             "streaming Generate calls open at once per client connection (0: unlimited); "
             "above: RESOURCE_EXHAUSTED"),
      LV_INT("limits.result_ttl_s", limits.result_ttl_s,
             "how long finished results are kept for Get"),
      LV_INT("limits.max_stored_results_mb", limits.max_stored_results_mb,
             "results kept in state_dir (in memory without one), all requests together, MiB "
             "(the oldest are evicted first)"),
      LV_INT("limits.max_finished_requests", limits.max_finished_requests,
             "finished requests remembered for Get within result_ttl_s (the oldest go first)"),
      LV_INT("limits.max_message_bytes", limits.max_message_bytes,
             "gRPC max send/receive message size"),
      LV_INT("limits.workers", limits.workers, "decode + encode worker threads"),
      LV_INT("limits.encode_threads", limits.encode_threads,
             "threads one request's PNG frames are encoded on (0: 1 on cpu; on cuda half the "
             "usable cores over limits.workers, 1..8)"),
      LV_INT("limits.overlap_decode", limits.overlap_decode,
             "run VAE decode concurrently with steps (GPUs; on CPU they compete for cores)"),
      LV_INT("limits.text_cache_entries", limits.text_cache_entries,
             "text embeddings cached per model"),
      LV_INT("limits.text_cache_mb", limits.text_cache_mb,
             "memory each model's text-embedding cache may hold, MiB (0: no cache)"),
      LV_STR("metrics.listen", metrics.listen,
             "Prometheus /metrics address host:port (empty: off)"),
      LV_STR("metrics.port_file", metrics.port_file, "write the bound metrics port to this file"),
      LV_STR("tls.cert_file", tls.cert_file, "PEM server certificate (enables TLS)"),
      LV_STR("tls.key_file", tls.key_file, "PEM private key for tls.cert_file"),
      LV_STR("tls.client_ca_file", tls.client_ca_file,
             "PEM CA: require and verify client certificates"),
      LV_STR("auth.admin_token_file", auth.admin_token_file,
             "file holding the bearer token Admin calls must send"),
      LV_INT("auth.generation", auth.generation,
             "also require the token on Generation (true/false)"),
      LV_INT("grpc.keepalive_time_ms", grpc.keepalive_time_ms, "keepalive ping interval"),
      LV_INT("grpc.keepalive_timeout_ms", grpc.keepalive_timeout_ms, "keepalive ping timeout"),
      LV_INT("grpc.max_streams", grpc.max_streams, "max concurrent streams per connection"),
      LV_INT("grpc.max_connection_age_s", grpc.max_connection_age_s,
             "close connections after this long so clients re-resolve and reach new replicas "
             "(calls in flight finish; 0: never)"),
      LV_STR("jobs.root", jobs.root,
             "folder of post-training job folders (enables linvideo.v1.Jobs; needs "
             "checkpoint_root)"),
      LV_STR("jobs.train_binary", jobs.train_binary,
             "linvideo-train (empty: next to linvideo-server or in ../tools)"),
      LV_STR("jobs.eval_binary", jobs.eval_binary, "linvideo-eval (empty: found the same way)"),
      LV_INT("jobs.threads", jobs.threads,
             "LibTorch threads per job (0: the number of jobs.cpus, else 1)"),
      LV_INT("jobs.processes", jobs.processes,
             "data-parallel processes per training stage (linvideo-train launch; the "
             "combined batch must be a multiple)"),
      LV_STR("jobs.cpus", jobs.cpus, "CPU affinity of jobs, e.g. 1 or 2-3 (empty: inherit)"),
      LV_INT("jobs.nice", jobs.nice, "nice level added to jobs (0..19)"),
      LV_STR("jobs.device", jobs.device, "where jobs run: cpu, cuda, cuda:N"),
      LV_INT("jobs.max_concurrent", jobs.max_concurrent, "jobs running at once; others queue"),
      LV_INT("jobs.max_retries", jobs.max_retries,
             "restarts of a job stage killed by a signal (OOM) before the job fails"),
      LV_INT("jobs.keep_finished", jobs.keep_finished, "finished job folders kept"),
      LV_INT("jobs.finished_ttl_h", jobs.finished_ttl_h,
             "hours after which finished job folders are removed"),
      LV_INT("jobs.cancel_grace_s", jobs.cancel_grace_s,
             "seconds between SIGTERM and SIGKILL when a job is cancelled"),
      LV_INT("drain_grace_s", drain_grace_s, "SIGTERM/Drain: seconds in-flight work may take"),
  };
  return options;
}

const Option* FindOption(const std::string& name) {
  for (const Option& o : Options()) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

absl::Status Set(ServerConfig& c, const std::string& name, const std::string& value) {
  const Option* o = FindOption(name);
  if (o == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown option '", name, "'; run linvideo-server --help for the list"));
  }
  absl::Status s = o->set(c, value);
  if (s.ok()) c.given.insert(name);
  return s;
}

absl::Status ApplyJson(ServerConfig& c, const nlohmann::json& j, const std::string& prefix) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (key == "models") {
      // {"models": {"NAME": "DIR", ...}} or [{"name": .., "path": ..}]
      const char* kShape =
          "config 'models' must be an object NAME -> DIR or a list of "
          "{\"name\": NAME, \"path\": DIR}";
      if (it->is_object()) {
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string()) return absl::InvalidArgumentError(kShape);
          c.models.push_back({m.key(), m->get<std::string>()});
        }
      } else if (it->is_array()) {
        for (const auto& m : *it) {
          auto name = m.is_object() ? m.find("name") : m.end();
          auto path = m.is_object() ? m.find("path") : m.end();
          if (name == m.end() || path == m.end() || !name->is_string() || !path->is_string())
            return absl::InvalidArgumentError(kShape);
          c.models.push_back({name->get<std::string>(), path->get<std::string>()});
        }
      } else {
        return absl::InvalidArgumentError(kShape);
      }
    } else if (it->is_object()) {
      if (std::count(key.begin(), key.end(), '.') >= kMaxConfigDepth) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown option '", key.substr(0, 64), "...': nested too deep"));
      }
      absl::Status s = ApplyJson(c, *it, key);
      if (!s.ok()) return s;
    } else {
      absl::Status s = Set(c, key, it->is_string() ? it->get<std::string>() : it->dump());
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsLoopbackListen(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:")) return true;
  std::string host = listen;
  if (const size_t colon = listen.rfind(':'); colon != std::string::npos) {
    host = listen.substr(0, colon);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

absl::Status ValidateModelName(const std::string& name, const std::string& where) {
  const bool ok = !name.empty() && name.size() <= 64 && name != "." && name != ".." &&
                  std::all_of(name.begin(), name.end(), [](char ch) {
                    return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' ||
                           ch == '_' || ch == '-';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      where, "model name '", name, "' is not allowed: use 1-64 characters from [A-Za-z0-9._-]"));
}

absl::Status ServerConfig::Validate() const {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (listen.empty() || listen.find(':') == std::string::npos) {
    return bad(absl::StrCat("listen='", listen, "': expected host:port"));
  }
  if (models.empty()) return bad("no model: pass --model=NAME=DIR at least once");
  for (size_t i = 0; i < models.size(); ++i) {
    if (absl::Status s = ValidateModelName(models[i].name, "--model: "); !s.ok()) return s;
    for (size_t k = 0; k < i; ++k) {
      if (models[k].name == models[i].name)
        return bad(absl::StrCat("model name '", models[i].name, "' given twice"));
    }
  }
  if (executor != "pipeline" && executor != "fake") {
    return bad(absl::StrCat("executor='", executor, "': allowed pipeline, fake"));
  }
  if (threads < 0) return bad("threads must be >= 0");
  if (scheduler.max_batch < 1 || scheduler.max_batch > 64) {
    return bad(absl::StrCat("scheduler.max_batch=", scheduler.max_batch, ": allowed 1..64"));
  }
  if (scheduler.token_budget < 0) return bad("scheduler.token_budget must be >= 0");
  if (scheduler.memory_margin_pct < 0 || scheduler.memory_margin_pct > 90) {
    return bad(absl::StrCat("scheduler.memory_margin_pct=", scheduler.memory_margin_pct,
                            ": allowed 0..90"));
  }
  if (scheduler.max_queue < 1)
    return bad(absl::StrCat("scheduler.max_queue=", scheduler.max_queue, ": must be >= 1"));
  if (scheduler.max_queue_delay_ms < 0 || scheduler.max_queue_delay_ms > 60000) {
    return bad("scheduler.max_queue_delay_ms: allowed 0..60000");
  }
  if (scheduler.starvation_age_s < 1) return bad("scheduler.starvation_age_s must be >= 1");
  if (scheduler.limit_probe_steps < 1) return bad("scheduler.limit_probe_steps must be >= 1");
  if (limits.max_prompt_chars < 1) return bad("limits.max_prompt_chars must be >= 1");
  if (limits.max_cost < 0) return bad("limits.max_cost must be >= 0");
  if (limits.result_ttl_s < 1) return bad("limits.result_ttl_s must be >= 1");
  if (limits.max_finished_requests < 1) {
    return bad(absl::StrCat("limits.max_finished_requests=", limits.max_finished_requests,
                            ": allowed >= 1"));
  }
  if (limits.max_stored_results_mb < 1 || limits.max_stored_results_mb > (1 << 24)) {
    return bad("limits.max_stored_results_mb: allowed 1..16777216");
  }
  if (limits.requests_per_minute_per_peer < 0) {
    return bad("limits.requests_per_minute_per_peer must be >= 0 (0: unlimited)");
  }
  if (limits.burst_per_peer < 1 || limits.burst_per_peer > 100000) {
    return bad("limits.burst_per_peer: allowed 1..100000");
  }
  if (limits.keep_previous_checkpoints < 0 || limits.keep_previous_checkpoints > 16) {
    return bad(
        "limits.keep_previous_checkpoints: allowed 0..16 (each one holds a model in memory)");
  }
  if (limits.max_message_bytes < (1 << 20) + 4096) {
    return bad("limits.max_message_bytes must be >= 1 MiB + 4 KiB (video chunks are 1 MiB)");
  }
  if (limits.workers < 1 || limits.workers > 64) return bad("limits.workers: allowed 1..64");
  if (limits.encode_threads < 0 || limits.encode_threads > 64) {
    return bad("limits.encode_threads: allowed 0 (auto) or 1..64");
  }
  if (limits.text_cache_entries < 0) return bad("limits.text_cache_entries must be >= 0");
  if (limits.text_cache_mb < 0 || limits.text_cache_mb > (1 << 20)) {
    return bad("limits.text_cache_mb must be in [0, 1048576]");
  }
  if (!replica_advertise.empty()) {
    if (auto a = ParseAdvertise(replica_advertise); !a.ok()) return a.status();
    if (!tls.cert_file.empty()) {
      return bad(
          "replica.advertise with tls.cert_file: replicas forward Get and Cancel to each "
          "other over plaintext; terminate TLS in front of the replicas (a mesh or an "
          "ingress) or run one replica");
    }
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return bad("tls.cert_file and tls.key_file must be given together");
  }
  if (!tls.client_ca_file.empty() && tls.cert_file.empty())
    return bad("tls.client_ca_file needs tls.cert_file");
  if (auth.generation && auth.admin_token_file.empty()) {
    return bad("auth.generation=true needs auth.admin_token_file");
  }
  if (auth.admin_token_file.empty() && !IsLoopbackListen(listen)) {
    return bad(absl::StrCat(
        "listen '", listen,
        "' is reachable from other machines, and Admin and Jobs (checkpoint swaps, drain, "
        "post-training jobs) would answer anyone: give auth.admin_token_file (a file holding the "
        "bearer token; scripts/run.sh makes one), or listen on a loopback address (127.0.0.1, "
        "[::1], localhost, unix:)"));
  }
  if (grpc.keepalive_time_ms < 1000) return bad("grpc.keepalive_time_ms must be >= 1000");
  if (grpc.keepalive_timeout_ms < 100) return bad("grpc.keepalive_timeout_ms must be >= 100");
  if (grpc.max_streams < 1) return bad("grpc.max_streams must be >= 1");
  if (grpc.max_connection_age_s < 0) return bad("grpc.max_connection_age_s must be >= 0");
  if (limits.max_streams_per_connection < 0 ||
      limits.max_streams_per_connection > grpc.max_streams) {
    return bad(absl::StrCat("limits.max_streams_per_connection=", limits.max_streams_per_connection,
                            ": allowed 0..grpc.max_streams (", grpc.max_streams,
                            "; above it HTTP/2 queues the streams before the limit can answer)"));
  }
  if (drain_grace_s < 0) return bad("drain_grace_s must be >= 0");
  if (!jobs.root.empty()) {
    if (checkpoint_root.empty()) {
      return bad("jobs.root needs checkpoint_root: job outputs are published under it");
    }
    if (!jobs.cpus.empty()) {
      if (auto c = ParseCpuList(jobs.cpus); !c.ok())
        return bad("jobs.cpus: " + std::string(c.status().message()));
    }
    if (jobs.threads < 0 || jobs.threads > 256) return bad("jobs.threads: allowed 0..256");
    if (jobs.processes < 1 || jobs.processes > 64) return bad("jobs.processes: allowed 1..64");
    if (jobs.nice < 0 || jobs.nice > 19) return bad("jobs.nice: allowed 0..19");
    if (jobs.device != "cpu" && jobs.device != "cuda" && !absl::StartsWith(jobs.device, "cuda:")) {
      return bad(absl::StrCat("jobs.device='", jobs.device, "': allowed cpu, cuda, cuda:N"));
    }
    if (jobs.max_concurrent < 1 || jobs.max_concurrent > 16)
      return bad("jobs.max_concurrent: allowed 1..16");
    if (jobs.max_retries < 0 || jobs.max_retries > 10)
      return bad("jobs.max_retries: allowed 0..10");
    if (jobs.keep_finished < 0) return bad("jobs.keep_finished must be >= 0");
    if (jobs.finished_ttl_h < 1) return bad("jobs.finished_ttl_h must be >= 1");
    if (jobs.cancel_grace_s < 0) return bad("jobs.cancel_grace_s must be >= 0");
  }
  return absl::OkStatus();
}

absl::Status ApplyConfigText(std::string_view text, const std::string& source,
                             ServerConfig& config) {
  absl::StatusOr<nlohmann::json> j = core::io::ParseJson(text, source);
  if (!j.ok()) return j.status();
  if (!j->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a JSON object"));
  }
  absl::Status s = ApplyJson(config, *j, "");
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  return absl::OkStatus();
}

absl::StatusOr<ParsedConfig> ParseServerConfig(const std::vector<std::string>& args) {
  ParsedConfig out;
  // The file first, so flags override it regardless of order.
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") out.help = true;
    if (absl::StartsWith(a, "--config=")) {
      const std::string path = a.substr(9);
      absl::StatusOr<std::string> text = core::io::ReadFileToString(path, kMaxConfigBytes);
      if (!text.ok()) {
        return absl::Status(text.status().code(),
                            absl::StrCat("--config=", path, ": ", text.status().message()));
      }
      absl::Status s = ApplyConfigText(*text, "--config=" + path, out.config);
      if (!s.ok()) return s;
    }
  }
  if (out.help) return out;
  for (const std::string& a : args) {
    if (absl::StartsWith(a, "--config=")) continue;
    if (!absl::StartsWith(a, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", a, "'; options are --name=value"));
    }
    const size_t eq = a.find('=');
    const std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const std::string value = eq == std::string::npos ? "true" : a.substr(eq + 1);
    absl::Status s = Set(out.config, name, value);
    if (!s.ok()) return s;
  }
  return out;
}

std::string ServerConfigHelp() {
  std::ostringstream os;
  const ServerConfig defaults;
  os << "linvideo-server: text-to-video gRPC server (linvideo.v1.Generation, Admin, Jobs).\n"
        "Usage: linvideo-server [--config=FILE.json] [--name=value ...]\n"
        "The JSON file uses the same names as nested objects ({\"scheduler\": {\"max_batch\": "
        "4}},\n"
        "\"models\": {\"NAME\": \"DIR\"}); flags override the file.\n\nOptions (default in "
        "brackets):\n";
  for (const Option& o : Options()) {
    os << absl::StrFormat("  --%-32s %s [%s]\n", o.name, o.help, o.get(defaults));
  }
  return os.str();
}

}  // namespace linvideo::server
