#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "client/cli.h"

namespace linvideo::client {

std::string Args::Get(const std::string& name, const std::string& def) const {
  auto it = flags.find(name);
  return it == flags.end() ? def : it->second;
}

double Args::Num(const std::string& name, double def) const {
  auto it = flags.find(name);
  if (it == flags.end()) return def;
  double v;
  if (!absl::SimpleAtod(it->second, &v)) {
    std::cerr << "--" << name << "=" << it->second << ": not a number\n";
    std::exit(64);
  }
  return v;
}

int64_t Args::Int(const std::string& name, int64_t def, int64_t min, int64_t max) const {
  auto it = flags.find(name);
  if (it == flags.end()) return def;
  int64_t v;
  if (!absl::SimpleAtoi(it->second, &v) || v < min || v > max) {
    std::cerr << "--" << name << "=" << it->second << ": not an integer in [" << min << ", " << max
              << "]\n";
    std::exit(64);
  }
  return v;
}

uint64_t Args::Uint64(const std::string& name, uint64_t def) const {
  auto it = flags.find(name);
  if (it == flags.end()) return def;
  uint64_t v;
  if (!absl::SimpleAtoi(it->second, &v)) {
    std::cerr << "--" << name << "=" << it->second << ": not an integer in [0, " << UINT64_MAX
              << "]\n";
    std::exit(64);
  }
  return v;
}

Args ParseArgs(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      const size_t eq = s.find('=');
      if (eq == std::string::npos) {
        a.flags[s.substr(2)] = "true";
      } else {
        a.flags[s.substr(2, eq - 2)] = s.substr(eq + 1);
      }
    } else {
      a.words.push_back(s);
    }
  }
  return a;
}

namespace {
std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "cannot read " << path << "\n";
    std::exit(64);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

std::unique_ptr<grpc::ClientContext> Client::Context(double t) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  const double s = t > 0 ? t : timeout_s;
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(s * 1000)));
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

Client Connect(const Args& args) {
  Client c;
  const std::string target = args.Get("server", "127.0.0.1:50051");
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (args.Has("tls_cert") != args.Has("tls_key")) {
    std::cerr << "--tls_cert and --tls_key go together (the client certificate and its key)\n";
    std::exit(2);
  }
  if (args.Has("tls_ca") || args.Has("tls_cert")) {
    grpc::SslCredentialsOptions ssl;
    if (args.Has("tls_ca")) ssl.pem_root_certs = ReadAll(args.Get("tls_ca"));
    if (args.Has("tls_cert")) {  // for servers that require client certificates
      ssl.pem_cert_chain = ReadAll(args.Get("tls_cert"));
      ssl.pem_private_key = ReadAll(args.Get("tls_key"));
    }
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments ch;
  ch.SetMaxReceiveMessageSize(64 << 20);
  // Several replicas behind one name (dns:///linvideo-headless:50051, or ipv4:A:P,B:P):
  // round_robin spreads calls over all resolved addresses; pick_first (gRPC's default) sends all
  // of them to one.
  const std::string lb = args.Get("lb_policy", "pick_first");
  if (lb != "pick_first" && lb != "round_robin") {
    std::cerr << "--lb_policy='" << lb << "': allowed pick_first or round_robin\n";
    std::exit(64);
  }
  ch.SetLoadBalancingPolicyName(lb);
  c.channel = grpc::CreateCustomChannel(target, creds, ch);
  c.generation = v1::Generation::NewStub(c.channel);
  c.admin = v1::Admin::NewStub(c.channel);
  c.jobs = v1::Jobs::NewStub(c.channel);
  c.token = args.Get("token");
  if (args.Has("token_file"))
    c.token = std::string(absl::StripAsciiWhitespace(ReadAll(args.Get("token_file"))));
  c.timeout_s = args.Num("timeout", 600);
  if (c.timeout_s <= 0) {
    std::cerr << "--timeout must be > 0 seconds\n";
    std::exit(64);
  }
  return c;
}

int Fail(const grpc::Status& s) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = s.error_code();
  std::cerr << "error: " << (code >= 0 && code <= 16 ? kNames[code] : "?") << ": "
            << s.error_message() << "\n";
  return code == 0 ? 0 : code;
}

bool BuildRequest(const Args& a, v1::GenerateRequest* r, std::string* error) {
  r->set_request_id(a.Get("id"));
  r->set_prompt(a.Get("prompt"));
  r->set_negative_prompt(a.Get("negative_prompt"));
  r->set_model(a.Get("model"));
  r->set_width(static_cast<int>(a.Int("width", 0)));
  r->set_height(static_cast<int>(a.Int("height", 0)));
  r->set_frames(static_cast<int>(a.Int("frames", 0)));
  r->set_steps(static_cast<int>(a.Int("steps", 0)));
  if (a.Has("guidance")) r->set_guidance(a.Num("guidance", 0));
  if (a.Has("shift")) r->set_shift(a.Num("shift", 0));
  r->set_seed(a.Uint64("seed", 0));
  r->set_fps(static_cast<int>(a.Int("fps", 0)));
  const std::string sampler = a.Get("sampler");  // empty: the model's declared sampler
  if (sampler.empty())
    r->set_sampler(v1::SAMPLER_UNSPECIFIED);
  else if (sampler == "unipc")
    r->set_sampler(v1::SAMPLER_UNIPC);
  else if (sampler == "euler")
    r->set_sampler(v1::SAMPLER_EULER);
  else if (sampler == "fewstep" || sampler == "few_step" || sampler == "few-step")
    r->set_sampler(v1::SAMPLER_FEW_STEP);
  else
    return *error = "--sampler: allowed unipc, euler, fewstep (unset: the model's own)", false;
  const std::string format = a.Get("format", "mp4");
  if (format == "mp4")
    r->set_format(v1::OUTPUT_FORMAT_MP4);
  else if (format == "webm")
    r->set_format(v1::OUTPUT_FORMAT_WEBM);
  else if (format == "png")
    r->set_format(v1::OUTPUT_FORMAT_PNG_FRAMES);
  else
    return *error = "--format: allowed mp4, webm, png", false;
  const std::string priority = a.Get("priority", "normal");
  if (priority == "normal")
    r->set_priority(v1::PRIORITY_NORMAL);
  else if (priority == "low")
    r->set_priority(v1::PRIORITY_LOW);
  else if (priority == "high")
    r->set_priority(v1::PRIORITY_HIGH);
  else
    return *error = "--priority: allowed low, normal, high", false;
  return true;
}

namespace {

// Writes `data` to `path` through PATH.part and a rename, checking every step (the close too: a
// full disk shows there), so a failed write is an error that names the file, never a truncated
// video under the name asked for and exit status 0.
grpc::Status WriteOut(const std::string& path, const std::string& data) {
  const std::string part = path + ".part";
  auto failed = [&](const std::string& what) {
    const std::string why = std::strerror(errno);
    std::remove(part.c_str());
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("cannot ", what, " ", path, ": ", why,
                                     " (the video was generated; Get it again with its id)"));
  };
  std::ofstream f(part, std::ios::binary | std::ios::trunc);
  if (!f) return failed("create");
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  f.close();
  if (!f) return failed("write");
  if (std::rename(part.c_str(), path.c_str()) != 0) return failed("rename onto");
  return grpc::Status::OK;
}

}  // namespace

grpc::Status RunGenerate(const Client& client, const v1::GenerateRequest& req,
                         const std::string& out, bool progress, std::string* video,
                         v1::Stats* stats) {
  auto ctx = client.Context();
  auto reader = client.generation->Generate(ctx.get(), req);
  v1::GenerateEvent ev;
  std::string bytes;
  std::vector<std::string> frames;
  const bool tty = isatty(2);
  while (reader->Read(&ev)) {
    switch (ev.event_case()) {
      case v1::GenerateEvent::kQueued:
        if (progress)
          std::fprintf(stderr, "%s queued: position %d\n", ev.request_id().c_str(),
                       ev.queued().position());
        break;
      case v1::GenerateEvent::kStarted:
        if (progress) {
          std::fprintf(stderr, "started on %s v%lld (batch of %d)\n", ev.started().model().c_str(),
                       static_cast<long long>(ev.started().checkpoint_version()),
                       ev.started().batch_size());
        }
        break;
      case v1::GenerateEvent::kProgress:
        if (progress) {
          const int n = ev.progress().total_steps(), k = ev.progress().step();
          const int w = 30, filled = n > 0 ? k * w / n : w;
          std::fprintf(stderr, "%s[%s%s] step %d/%d%s", tty ? "\r" : "",
                       std::string(filled, '#').c_str(), std::string(w - filled, '.').c_str(), k, n,
                       tty && k < n ? "" : "\n");
        }
        break;
      case v1::GenerateEvent::kChunk:
        if (req.format() == v1::OUTPUT_FORMAT_PNG_FRAMES) {
          if (static_cast<int>(frames.size()) <= ev.chunk().frame_index())
            frames.resize(ev.chunk().frame_index() + 1);
          frames[ev.chunk().frame_index()] += ev.chunk().data();
        } else {
          bytes += ev.chunk().data();
        }
        break;
      case v1::GenerateEvent::kCompleted:
        if (stats != nullptr) *stats = ev.completed().stats();
        if (progress) {
          const auto& s = ev.completed().stats();
          std::fprintf(stderr,
                       "done in %.2fs (queue %.2f, compute %.2f of which start %.2f, decode %.2f, "
                       "encode %.2f), "
                       "%lld bytes\n",
                       s.total_seconds(), s.queue_seconds(), s.compute_seconds(), s.start_seconds(),
                       s.decode_seconds(), s.encode_seconds(),
                       static_cast<long long>(s.video_bytes()));
        }
        break;
      default:
        break;
    }
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return st;
  if (!out.empty()) {
    if (req.format() == v1::OUTPUT_FORMAT_PNG_FRAMES) {
      std::error_code ec;
      std::filesystem::create_directories(out, ec);
      if (ec) {
        return grpc::Status(grpc::StatusCode::UNKNOWN,
                            absl::StrCat("cannot create the folder ", out, ": ", ec.message()));
      }
      for (size_t i = 0; i < frames.size(); ++i) {
        grpc::Status w = WriteOut(absl::StrFormat("%s/frame_%04d.png", out, i), frames[i]);
        if (!w.ok()) return w;
      }
    } else if (grpc::Status w = WriteOut(out, bytes); !w.ok()) {
      return w;
    }
    if (progress) std::fprintf(stderr, "wrote %s\n", out.c_str());
  }
  if (video != nullptr) *video = std::move(bytes);
  return st;
}

int CmdGenerate(const Args& a) {
  Client c = Connect(a);
  v1::GenerateRequest req;
  std::string error;
  if (!BuildRequest(a, &req, &error)) return std::cerr << error << "\n", 64;
  if (!a.Has("out")) return std::cerr << "generate needs --out=FILE\n", 64;
  // --retries=N: a call that ends UNAVAILABLE (the server is paused, draining or shutting down,
  // or not up yet; or the connection dropped) is made again, after 1, 2, 4 ... (at most 30)
  // seconds; with --id, the same id runs again once the server has ended the dropped call.
  const int retries = static_cast<int>(a.Int("retries", 0));
  if (retries < 0) return std::cerr << "--retries must be >= 0\n", 64;
  grpc::Status st;
  double wait_s = 1;
  for (int attempt = 0;; ++attempt) {
    st = RunGenerate(c, req, a.Get("out"), !a.Has("quiet"));
    // With --id, ALREADY_EXISTS is most often an earlier call with this id (this one's first
    // attempt, or a run of the command whose connection dropped) still winding down: the server
    // cancels its request at its next step and then lets the id run again. Wait and call again.
    const bool retryable =
        st.error_code() == grpc::StatusCode::UNAVAILABLE ||
        (!req.request_id().empty() && st.error_code() == grpc::StatusCode::ALREADY_EXISTS);
    if (st.ok() || !retryable || attempt >= retries) break;
    std::fprintf(
        stderr, "%s: %s; retry %d/%d in %.0f s\n",
        st.error_code() == grpc::StatusCode::UNAVAILABLE ? "UNAVAILABLE" : "ALREADY_EXISTS",
        st.error_message().c_str(), attempt + 1, retries, wait_s);
    std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
    wait_s = std::min(wait_s * 2, 30.0);
  }
  return st.ok() ? 0 : Fail(st);
}

int CmdSubmit(const Args& a) {
  Client c = Connect(a);
  v1::GenerateRequest req;
  std::string error;
  if (!BuildRequest(a, &req, &error)) return std::cerr << error << "\n", 64;
  v1::SubmitResponse resp;
  auto ctx = c.Context();
  grpc::Status st = c.generation->Submit(ctx.get(), req, &resp);
  if (!st.ok()) return Fail(st);
  std::cout << resp.request_id() << "\n";
  return 0;
}

// Bytes asked per Get when reading a result (the server sends at most what fits its messages).
constexpr int64_t kResultPartBytes = 4 << 20;

int CmdStatus(const Args& a) {
  Client c = Connect(a);
  v1::GetRequest req;
  req.set_request_id(a.Get("id"));
  req.set_include_result(a.Has("out"));
  // The result in parts, so a video larger than one message (the server's
  // limits.max_message_bytes) still arrives; one part when it fits.
  req.set_result_max_bytes(kResultPartBytes);
  v1::GetResponse resp;
  auto ctx = c.Context();
  grpc::Status st = c.generation->Get(ctx.get(), req, &resp);
  if (!st.ok()) return Fail(st);
  std::string result = resp.result();
  while (resp.state() == v1::REQUEST_STATE_DONE && a.Has("out") &&
         static_cast<int64_t>(result.size()) < resp.result_size()) {
    req.set_result_offset(static_cast<int64_t>(result.size()));
    v1::GetResponse part;
    auto part_ctx = c.Context();
    st = c.generation->Get(part_ctx.get(), req, &part);
    if (!st.ok()) return Fail(st);
    if (part.result().empty() || part.result_size() != resp.result_size()) {
      std::cerr << "error: the result changed or stopped while it was read\n";
      return 15;  // DATA_LOSS
    }
    result += part.result();
  }
  std::cout << "id=" << resp.request_id() << " state=" << v1::RequestState_Name(resp.state())
            << " position=" << resp.position() << " step=" << resp.step() << "/"
            << resp.total_steps();
  if (resp.error_code() != 0)
    std::cout << " error=" << resp.error_code() << " \"" << resp.error_message() << "\"";
  std::cout << "\n";
  if (resp.state() == v1::REQUEST_STATE_DONE && a.Has("out")) {
    if (grpc::Status w = WriteOut(a.Get("out"), result); !w.ok()) return Fail(w);
    std::cout << "wrote " << a.Get("out") << " (" << result.size() << " bytes)\n";
  }
  return 0;
}

int CmdCancel(const Args& a) {
  Client c = Connect(a);
  v1::CancelRequest req;
  req.set_request_id(a.Get("id"));
  v1::CancelResponse resp;
  auto ctx = c.Context();
  grpc::Status st = c.generation->Cancel(ctx.get(), req, &resp);
  if (!st.ok()) return Fail(st);
  std::cout << "cancelled " << req.request_id() << " (state " << v1::RequestState_Name(resp.state())
            << ")\n";
  return 0;
}

int CmdModels(const Args& a) {
  Client c = Connect(a);
  v1::ListModelsResponse resp;
  auto ctx = c.Context();
  grpc::Status st = c.generation->ListModels(ctx.get(), v1::ListModelsRequest(), &resp);
  if (!st.ok()) return Fail(st);
  for (const auto& m : resp.models()) {
    // SAMPLER_FEW_STEP -> "fewstep", the name --sampler takes.
    std::string sampler = absl::StrReplaceAll(
        absl::AsciiStrToLower(v1::Sampler_Name(m.default_sampler()).substr(8)), {{"_", ""}});
    if (m.timesteps_size() > 0) {
      sampler = absl::StrCat(sampler, " only, timesteps ", absl::StrJoin(m.timesteps(), ","));
    }
    std::cout << absl::StrFormat(
        "%s%s v%d %s  max %dx%d frames<=%d steps<=%d, defaults %dx%dx%d %d steps guidance %g, "
        "sampler %s\n",
        m.name(), m.is_default() ? " (default)" : "", m.checkpoint_version(), m.path(),
        m.max_width(), m.max_height(), m.max_frames(), m.max_steps(), m.default_width(),
        m.default_height(), m.default_frames(), m.default_steps(), m.default_guidance(), sampler);
    if (a.Has("lineage")) std::cout << "  lineage " << m.lineage_json() << "\n";
  }
  return 0;
}

int CmdAdmin(const Args& a) {
  Client c = Connect(a);
  const std::string sub = a.words.empty() ? "" : a.words[0];
  auto ctx = c.Context();
  grpc::Status st;
  if (sub == "checkpoints") {
    v1::ListCheckpointsResponse r;
    st = c.admin->ListCheckpoints(ctx.get(), {}, &r);
    for (const auto& k : r.checkpoints()) {
      std::cout << k.model() << " v" << k.version() << " " << k.path()
                << (k.active() ? " (active)" : "") << "\n";
    }
  } else if (sub == "load") {
    v1::LoadCheckpointRequest req;
    req.set_model(a.Get("model"));
    req.set_path(a.Get("path"));
    v1::LoadCheckpointResponse r;
    st = c.admin->LoadCheckpoint(ctx.get(), req, &r);
    if (st.ok()) {
      std::cout << "active: " << r.checkpoint().model() << " v" << r.checkpoint().version() << " "
                << r.checkpoint().path()
                << absl::StrFormat(" (loaded in %.2fs)\n", r.load_seconds());
    }
  } else if (sub == "rollback") {
    v1::RollbackRequest req;
    req.set_model(a.Get("model"));
    v1::RollbackResponse r;
    st = c.admin->Rollback(ctx.get(), req, &r);
    if (st.ok())
      std::cout << "active: " << r.checkpoint().model() << " v" << r.checkpoint().version() << "\n";
  } else if (sub == "drain") {
    v1::DrainRequest req;
    req.set_wait(a.Has("wait"));
    v1::DrainResponse r;
    st = c.admin->Drain(ctx.get(), req, &r);
    if (st.ok()) std::cout << "draining; " << r.remaining() << " requests outstanding\n";
  } else if (sub == "pause") {
    v1::PauseResponse r;
    st = c.admin->Pause(ctx.get(), {}, &r);
  } else if (sub == "resume") {
    v1::ResumeResponse r;
    st = c.admin->Resume(ctx.get(), {}, &r);
  } else {
    std::cerr << "admin: expected checkpoints | load | rollback | drain | pause | resume\n";
    return 64;
  }
  return st.ok() ? 0 : Fail(st);
}

}  // namespace linvideo::client
