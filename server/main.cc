// linvideo-server: serves linvideo.v1.Generation and linvideo.v1.Admin over gRPC, with health,
// reflection and Prometheus /metrics. See docs/serving.md and `linvideo-server --help`.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "core/common/runtime.h"
#include "core/common/status.h"
#include "server/config.h"
#include "server/engine.h"
#include "server/fake_executor.h"
#include "server/job_manager.h"
#include "server/jobs_service.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/request_journal.h"
#include "server/services.h"
#include "server/stream_limiter.h"
#ifdef LINVIDEO_WITH_PIPELINE
#include "kernels/device_memory.h"
#include "server/memory_budget.h"
#include "server/pipeline_executor.h"
#endif

namespace linvideo::server {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A tool binary: `configured`, else next to linvideo-server, else in ../tools (the build tree).
std::string ToolPath(const std::string& configured, const std::string& name) {
  if (!configured.empty()) return configured;
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  const std::string exe = n > 0 ? std::string(buf, n) : "";
  const std::string dir = exe.substr(0, exe.rfind('/'));
  for (const std::string& candidate : {dir + "/" + name, dir + "/../tools/" + name}) {
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return dir + "/" + name;
}

// The JobManager of --jobs.root: resolves bases through the registry and activates outputs
// through Admin.LoadCheckpoint's path.
absl::StatusOr<std::unique_ptr<JobManager>> StartJobs(const ServerConfig& config,
                                                      ModelRegistry* registry, Metrics* metrics) {
  JobManagerOptions o;
  o.root = config.jobs.root;
  o.checkpoint_root = config.checkpoint_root;
  o.train_binary = ToolPath(config.jobs.train_binary, "linvideo-train");
  o.eval_binary = ToolPath(config.jobs.eval_binary, "linvideo-eval");
  if (!config.jobs.cpus.empty()) o.cpus = *ParseCpuList(config.jobs.cpus);
  o.threads = config.jobs.threads > 0 ? config.jobs.threads
                                      : std::max<int>(1, static_cast<int>(o.cpus.size()));
  o.processes = config.jobs.processes;
  o.nice = config.jobs.nice;
  o.device = config.jobs.device;
  o.max_concurrent = config.jobs.max_concurrent;
  o.max_retries = config.jobs.max_retries;
  o.keep_finished = config.jobs.keep_finished;
  o.finished_ttl = absl::Hours(config.jobs.finished_ttl_h);
  o.cancel_grace = absl::Seconds(config.jobs.cancel_grace_s);
  JobHooks hooks;
  const std::string root = config.checkpoint_root;
  hooks.resolve_base = [registry, root](const std::string& base) -> absl::StatusOr<ResolvedBase> {
    if (auto m = registry->Get(base); m.ok()) return ResolvedBase{(*m)->dir, (*m)->name};
    auto dir = ConfinePath(root, base);
    if (dir.ok()) return ResolvedBase{*dir, ""};
    if (dir.status().code() == absl::StatusCode::kPermissionDenied) return dir.status();
    std::vector<std::string> names;
    for (const auto& m : registry->Active()) names.push_back(m->name);
    return absl::NotFoundError(absl::StrCat("unknown base '", base, "': not a served model (",
                                            absl::StrJoin(names, ", "),
                                            ") and not a folder under the checkpoint root"));
  };
  hooks.activate = [registry, metrics](const std::string& model,
                                       const std::string& path) -> absl::StatusOr<int64_t> {
    auto m = ActivateCheckpoint(registry, metrics, model, path);
    if (!m.ok()) return m.status();
    return (*m)->version;
  };
  hooks.validate = [registry](const std::string& dir) { return registry->Validate(dir); };
  return JobManager::Create(std::move(o), std::move(hooks), metrics);
}

// The CUDA device index of --device (cuda = 0, cuda:N), -1 for the CPU (Validate parsed it).
int CudaIndex(const std::string& device) {
  auto d = core::ParseDevice(device);
  if (!d.ok() || !d->is_cuda()) return -1;
  return d->has_index() ? d->index() : 0;
}

#ifdef LINVIDEO_WITH_PIPELINE
// scheduler.auto_budget on a CUDA device: measures every loaded model's step memory and sets
// `config`'s token budget and batch size from what the device has left (server/memory_budget.h).
// RESOURCE_EXHAUSTED when a model's largest allowed request cannot fit.
absl::Status ApplyMemoryBudget(const ModelRegistry& registry, int cuda_index,
                               ServerConfig& config) {
  DeviceMemoryProbe probe;
  probe.used_bytes = [cuda_index]() -> int64_t {
    for (const kernels::DeviceMemory& m : kernels::QueryDeviceMemory(cuda_index)) {
      if (m.device != "cpu") return m.used_bytes;
    }
    return 0;
  };
  probe.release_cached = [cuda_index] { kernels::ReleaseCachedDeviceMemory(cuda_index); };
  ServingBudgetOptions options;
  for (const kernels::DeviceMemory& m : kernels::QueryDeviceMemory(cuda_index)) {
    if (m.device != "cpu") options.total_bytes = m.total_bytes;
  }
  if (options.total_bytes == 0)
    return absl::UnavailableError("no CUDA memory reading in this build");
  options.margin = config.scheduler.memory_margin_pct / 100.0;
  options.overlap_decode = config.limits.overlap_decode;
  options.decode_workers = config.limits.workers;
  // Admin loads and finished jobs swap checkpoints in: the new one loads beside the active one,
  // and keep_previous_checkpoints replaced ones stay.
  if (!config.checkpoint_root.empty() || !config.jobs.root.empty()) {
    options.swap_models = 1 + config.limits.keep_previous_checkpoints;
  }
  std::vector<BudgetModel> models;
  for (const auto& m : registry.Active()) models.push_back({m->name, m->executor.get(), m->limits});
  // An explicit scheduler.max_batch caps the derivation (a smaller batch leaves each model a
  // larger budget); an explicit token_budget caps the budgets derived.
  if (config.given.count("scheduler.max_batch") > 0) {
    options.max_batch_cap = std::clamp(config.scheduler.max_batch, 1, options.max_batch_cap);
  }
  LV_ASSIGN_OR_RETURN(MemoryBudget b, DeriveServingBudget(models, probe, options));
  const std::string applied = ApplyServingBudget(b, config.given, config.scheduler);
  LV_LOG(INFO) << "scheduler.auto_budget on " << config.device << ": " << b.summary << " ("
               << applied << ")";
  return absl::OkStatus();
}
#endif

int Run(const ServerConfig& config) {
  core::InitRuntime(config.threads);
  ExecutorFactory factory;
  if (config.executor == "fake") {
    factory = &FakeExecutor::FromDir;
  } else {
#ifdef LINVIDEO_WITH_PIPELINE
    factory = MakePipelineExecutorFactory(config);
#else
    std::cerr << "executor=pipeline: this build has no pipeline adapter; use --executor=fake\n";
    return 2;
#endif
  }
  // Re-read when the file changes: rotating the token needs no restart.
  std::unique_ptr<BearerToken> token = std::make_unique<BearerToken>();
  if (!config.auth.admin_token_file.empty()) {
    auto t = BearerToken::FromFile(config.auth.admin_token_file);
    if (!t.ok()) {
      std::cerr << t.status().message() << "\n";
      return 2;
    }
    token = std::move(*t);
  }

  Metrics metrics;
  // Model compute is exclusive on CPU (steps, decodes and warm-ups each use every core); on an
  // accelerator decode and warm-up overlap the steps (limits.overlap_decode).
  ComputeDevice compute(/*exclusive=*/!config.limits.overlap_decode);
  ModelRegistry registry(factory, {config.checkpoint_root, config.limits.max_prompt_chars, &compute,
                                   config.limits.keep_previous_checkpoints});
  for (const ModelSpec& m : config.models) {
    auto loaded = registry.LoadInitial(m.name, m.path);
    if (!loaded.ok()) {
      std::cerr << "model " << m.name << ": " << loaded.status() << "\n";
      return 1;
    }
    metrics.SetCheckpoint(m.name, (*loaded)->version, m.path);
    LV_LOG(INFO) << "model=" << m.name << " loaded from " << m.path;
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  if (!config.metrics.listen.empty()) {
    auto e = StartExposer(config.metrics.listen, metrics);
    if (!e.ok()) {
      std::cerr << e.status() << "\n";
      return 1;
    }
    exposer = std::move(*e);
    const int port = exposer->GetListeningPorts().empty() ? 0 : exposer->GetListeningPorts()[0];
    LV_LOG(INFO) << "metrics on http://" << config.metrics.listen << "/metrics port=" << port;
    if (!config.metrics.port_file.empty()) std::ofstream(config.metrics.port_file) << port << "\n";
  }

  std::unique_ptr<RequestJournal> journal;
  std::vector<RecoveredRequest> recovered;
  if (!config.state_dir.empty()) {
    JournalOptions jo;
    jo.dir = config.state_dir;
    jo.result_ttl = absl::Seconds(config.limits.result_ttl_s);
    jo.max_result_bytes = int64_t{config.limits.max_stored_results_mb} << 20;
    auto j = RequestJournal::Open(jo, &recovered);
    if (!j.ok()) {
      std::cerr << j.status().message() << "\n";
      return 2;
    }
    journal = std::move(*j);
  }
  // The scheduler's limits, from device memory on a CUDA device (scheduler.auto_budget).
  ServerConfig serving = config;
  const int cuda_index = CudaIndex(config.device);
#ifdef LINVIDEO_WITH_PIPELINE
  if (cuda_index >= 0 && config.scheduler.auto_budget && config.executor == "pipeline") {
    if (absl::Status s = ApplyMemoryBudget(registry, cuda_index, serving); !s.ok()) {
      if (absl::IsResourceExhausted(s)) {
        std::cerr << s.message() << "\n";
        return 1;
      }
      LV_LOG(WARNING) << "scheduler.auto_budget: " << s.message()
                      << "; keeping token_budget=" << config.scheduler.token_budget
                      << " max_batch=" << config.scheduler.max_batch;
    }
  }
#endif
  Engine engine(serving, &registry, &compute, &metrics, journal.get());
  if (journal != nullptr) {
    const int again = engine.Recover(recovered);
    LV_LOG(INFO) << "state in " << config.state_dir << ": " << recovered.size()
                 << " request(s) recovered, " << again << " queued again";
  }
  absl::Notification shutdown;
  // A signal and a Drain RPC (or two Drains) may ask at the same time; Notify must run once.
  std::once_flag shutdown_once;
  auto request_shutdown = [&shutdown, &shutdown_once] {
    std::call_once(shutdown_once, [&shutdown] { shutdown.Notify(); });
  };
  std::unique_ptr<grpc::Server> server;
  auto set_serving = [&server, &metrics](bool serving) {
    metrics.SetServing(serving);
    if (server == nullptr) return;
    auto* health = server->GetHealthCheckService();
    health->SetServingStatus(serving);
    health->SetServingStatus("linvideo.v1.Generation", serving);
    // Liveness stays SERVING (the bool overload above sets every name).
    health->SetServingStatus("linvideo.v1.Liveness", true);
  };
  std::unique_ptr<JobManager> jobs;
  if (!config.jobs.root.empty()) {
    auto j = StartJobs(config, &registry, &metrics);
    if (!j.ok()) {
      std::cerr << j.status().message() << "\n";
      return 2;
    }
    jobs = std::move(*j);
    LV_LOG(INFO) << "jobs in " << config.jobs.root;
  }
  JobsService jobs_service(jobs.get(), &metrics, token.get());
  RateLimiter rate(config.limits.requests_per_minute_per_peer, config.limits.burst_per_peer);
  StreamLimiter streams(config.limits.max_streams_per_connection);
  std::unique_ptr<ReplicaRouter> router;
  if (!config.replica_advertise.empty()) {
    router = std::make_unique<ReplicaRouter>(config.limits.max_message_bytes);
  }
  GenerationService generation(&engine, &registry, &metrics,
                               config.auth.generation ? token.get() : nullptr, &rate, &streams,
                               router.get(), config.limits.max_message_bytes);
  AdminService admin(&engine, &registry, &metrics, token.get(), set_serving, request_shutdown,
                     config.drain_grace_s);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!config.tls.cert_file.empty()) {
    auto cert = ReadFile(config.tls.cert_file);
    auto key = ReadFile(config.tls.key_file);
    if (!cert.ok() || !key.ok()) {
      std::cerr << "tls: " << (cert.ok() ? key.status() : cert.status()) << "\n";
      return 2;
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    if (!config.tls.client_ca_file.empty()) {
      auto ca = ReadFile(config.tls.client_ca_file);
      if (!ca.ok()) {
        std::cerr << "tls.client_ca_file: " << ca.status() << "\n";
        return 2;
      }
      ssl.pem_root_certs = *ca;
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  }
  int port = 0;
  builder.AddListeningPort(config.listen, creds, &port);
  builder.RegisterService(&generation);
  builder.RegisterService(&admin);
  builder.RegisterService(&jobs_service);
  builder.SetMaxReceiveMessageSize(config.limits.max_message_bytes);
  builder.SetMaxSendMessageSize(config.limits.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, config.grpc.keepalive_time_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, config.grpc.keepalive_timeout_ms);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config.grpc.max_streams);
  if (config.grpc.max_connection_age_s > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               config.grpc.max_connection_age_s * 1000);
    // A generation may run for minutes: calls in flight get an hour to finish after the GOAWAY.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 3600 * 1000);
  }
  server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "cannot listen on " << config.listen << "\n";
    return 1;
  }
  if (router != nullptr) {
    ReplicaAddress self = *ParseAdvertise(config.replica_advertise);  // validated by the config
    if (self.port == 0) self.port = port;
    router->SetSelf(self);
    engine.SetIdSuffix(ReplicaSuffix(self));
    LV_LOG(INFO) << "replica " << router->self() << ": request ids end in ." << ReplicaSuffix(self);
  }
  // Health: "" and linvideo.v1.Generation follow Pause/Resume and drain (readiness);
  // linvideo.v1.Liveness is SERVING as long as the server answers at all, so a liveness probe on
  // it never restarts a paused or draining pod.
  set_serving(true);
  LV_LOG(INFO) << "linvideo-server listening on " << config.listen << " port=" << port
               << (config.tls.cert_file.empty() ? " (plaintext)" : " (TLS)");
  if (!config.port_file.empty()) {
    std::ofstream(config.port_file + ".tmp") << port << "\n";
    std::rename((config.port_file + ".tmp").c_str(), config.port_file.c_str());
  }

  // SIGTERM/SIGINT are blocked in every thread (see main); this one waits for them.
  std::thread([request_shutdown] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    sigwait(&set, &sig);
    LV_LOG(INFO) << "signal " << sig << ": draining";
    request_shutdown();
  }).detach();

  // Device memory every 5 s, on a thread of its own (a CUDA query sets that thread's device only).
  std::thread memory([&metrics, &shutdown, cuda_index] {
    do {
#ifdef LINVIDEO_WITH_PIPELINE  // kernels/ comes with the pipeline
      for (const kernels::DeviceMemory& m : kernels::QueryDeviceMemory(cuda_index)) {
        metrics.SetDeviceMemory(m.device, m.used_bytes, m.total_bytes);
      }
#else
      (void)cuda_index;
      (void)metrics;
#endif
    } while (!shutdown.WaitForNotificationWithTimeout(absl::Seconds(5)));
  });

  shutdown.WaitForNotification();
  memory.join();
  engine.Drain();
  set_serving(false);
  const int left = engine.WaitIdle(absl::Seconds(config.drain_grace_s));
  LV_LOG(INFO) << "drained; " << left << " requests unfinished at the end of the grace period";
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  jobs.reset();  // running jobs stop and resume at the next start
  engine.Stop();
  LV_LOG(INFO) << "bye";
  return 0;
}

}  // namespace
}  // namespace linvideo::server

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts, so only the sigwait thread sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = linvideo::server::ParseServerConfig(args);
  if (!parsed.ok()) {
    std::cerr << "linvideo-server: " << parsed.status().message() << "\n";
    return 2;
  }
  if (parsed->help) {
    std::cout << linvideo::server::ServerConfigHelp();
    return 0;
  }
  if (absl::Status s = parsed->config.Validate(); !s.ok()) {
    std::cerr << "linvideo-server: invalid configuration: " << s.message() << "\n";
    return 2;
  }
  return linvideo::server::Run(parsed->config);
}
