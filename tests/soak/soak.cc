// linvideo-soak: a long mixed load against a running linvideo-server on loopback (issue 21), with a
// hot swap every --swap_every_s between two checkpoints of one model, while the operator's
// post-training job runs (scripts/soak.sh starts the server and the job, then this).
//
// Load (--clients threads, until --minutes or --max_requests): streaming Generate to the end,
// Submit + polled Get, Generate cancelled by the client mid-run, Generate dropped while queued
// (disconnect), Generate with a deadline too short to finish, Submit then Cancel; mixed shapes.
// A fixed set of (shape, seed) "sampled" requests recurs among them: their video must equal the
// solo run of the same seed on the checkpoint it ran on (streaming: the version the Started event
// names; Submit: one of the two checkpoints). Every Submit'ed id must resolve.
// Every --sample_s the server's resident memory and open descriptors (/proc/PID) and the latency
// percentiles of the last window go to OUT_DIR/timeline.csv. The summary judges: no crash, no
// lost or wrong video, no unexpected status, RSS growth after --warmup_min below 5 %, descriptors
// stable. Exit 0 when all hold.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "linvideo/v1/admin.grpc.pb.h"
#include "linvideo/v1/generation.grpc.pb.h"

namespace linvideo::soak {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
  std::string server = "127.0.0.1:50051";
  std::string token;
  std::string model = "default";
  std::vector<std::string> swap_paths;  // two checkpoint folders (under the checkpoint root)
  std::string out_dir = "soak-out";
  std::string prompt = "a small red circle moves to the left on a white background";
  int pid = 0;
  double minutes = 30, warmup_min = 5, swap_every_s = 120, sample_s = 15;
  int clients = 3, max_requests = 100000, steps = 8;
};

struct Shape {
  int width, height, frames;
};
const Shape kShapes[] = {{64, 64, 9}, {48, 32, 5}, {32, 32, 9}};
constexpr int kSampledSeeds[] = {101, 202};

enum Kind { kStream, kSubmitPoll, kClientCancel, kDisconnect, kDeadline, kSubmitCancel, kKinds };
const char* kKindNames[] = {"stream",     "submit_poll", "client_cancel",
                            "disconnect", "deadline",    "submit_cancel"};

class Soak {
 public:
  explicit Soak(Options o) : o_(std::move(o)) {
    channel_ = grpc::CreateChannel(o_.server, grpc::InsecureChannelCredentials());
    gen_ = v1::Generation::NewStub(channel_);
    admin_ = v1::Admin::NewStub(channel_);
  }

  int Run() {
    fs::create_directories(o_.out_dir);
    start_ = Clock::now();
    if (!MakeReferences()) return 2;
    soak_start_ = Clock::now();
    const Clock::time_point end = soak_start_ + std::chrono::duration_cast<Clock::duration>(
                                                    std::chrono::duration<double>(o_.minutes * 60));
    std::thread swapper([&] { SwapLoop(end); });
    std::thread monitor([&] { MonitorLoop(end); });
    std::vector<std::thread> clients;
    for (int i = 0; i < o_.clients; ++i) clients.emplace_back([&, i] { ClientLoop(i, end); });
    for (auto& t : clients) t.join();
    stop_ = true;
    swapper.join();
    monitor.join();
    return Summary();
  }

 private:
  std::unique_ptr<grpc::ClientContext> Ctx(double timeout_s) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
    if (!o_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + o_.token);
    return ctx;
  }
  double Elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  void Log(const std::string& line) {
    std::lock_guard<std::mutex> l(mu_);
    std::fprintf(stderr, "[%7.1fs] %s\n", Elapsed(), line.c_str());
  }

  v1::GenerateRequest Request(const Shape& s, uint64_t seed) const {
    v1::GenerateRequest r;
    r.set_prompt(o_.prompt);
    r.set_model(o_.model);
    r.set_width(s.width);
    r.set_height(s.height);
    r.set_frames(s.frames);
    r.set_steps(o_.steps);
    r.set_seed(seed);
    return r;
  }
  static std::string Key(int shape, uint64_t seed) {
    return std::to_string(shape) + "/" + std::to_string(seed);
  }

  // Loads `path` as the model's checkpoint; returns its version (0 on failure).
  int64_t Swap(const std::string& path) {
    v1::LoadCheckpointRequest req;
    req.set_model(o_.model);
    req.set_path(path);
    v1::LoadCheckpointResponse resp;
    auto ctx = Ctx(300);
    grpc::Status st = admin_->LoadCheckpoint(ctx.get(), req, &resp);
    if (!st.ok()) {
      Log("swap to " + path + " failed: " + st.error_message());
      ++swap_failures_;
      return 0;
    }
    const int64_t v = resp.checkpoint().version();
    std::lock_guard<std::mutex> l(mu_);
    path_of_version_[v] = path;
    ++swaps_;
    return v;
  }

  // One streaming Generate to the end: status, video, the version it started on.
  grpc::Status Stream(const v1::GenerateRequest& req, double timeout_s, std::string* video,
                      int64_t* version, int cancel_after_progress = -1, bool drop_queued = false) {
    auto ctx = Ctx(timeout_s);
    auto reader = gen_->Generate(ctx.get(), req);
    v1::GenerateEvent ev;
    while (reader->Read(&ev)) {
      if (ev.has_queued() && drop_queued) ctx->TryCancel();
      if (ev.has_started()) *version = ev.started().checkpoint_version();
      if (ev.has_progress() && cancel_after_progress >= 0 &&
          ev.progress().step() >= cancel_after_progress) {
        ctx->TryCancel();
      }
      if (ev.has_chunk()) *video += ev.chunk().data();
    }
    return reader->Finish();
  }

  bool MakeReferences() {
    if (o_.swap_paths.size() != 2) {
      std::cerr << "--swap_paths needs two checkpoint folders (A,B)\n";
      return false;
    }
    for (const std::string& path : o_.swap_paths) {
      if (Swap(path) == 0) return false;
      for (int s = 0; s < static_cast<int>(std::size(kShapes)); ++s) {
        for (int seed : kSampledSeeds) {
          std::string video;
          int64_t version = 0;
          grpc::Status st = Stream(Request(kShapes[s], seed), 600, &video, &version);
          if (!st.ok() || video.empty()) {
            std::cerr << "reference " << path << " " << Key(s, seed)
                      << " failed: " << st.error_message() << "\n";
            return false;
          }
          refs_[path][Key(s, seed)] = video;
        }
      }
      Log("references made on " + path);
    }
    return true;
  }

  void SwapLoop(Clock::time_point end) {
    size_t next = 0;  // the references ended on B; the first swap goes back to A
    while (!stop_) {
      const Clock::time_point wake =
          Clock::now() + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(o_.swap_every_s));
      while (!stop_ && Clock::now() < wake && Clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (stop_ || Clock::now() >= end) return;
      const int64_t v = Swap(o_.swap_paths[next]);
      Log("swap -> " + o_.swap_paths[next] + " v" + std::to_string(v));
      next = 1 - next;
    }
  }

  // A mismatch: the video differs from every reference it may equal.
  void Wrong(const std::string& what) {
    ++wrong_;
    Log("WRONG VIDEO: " + what);
  }

  void Record(Kind kind, const grpc::Status& st, bool expected, double latency_s) {
    std::lock_guard<std::mutex> l(mu_);
    ++count_[kind];
    ++codes_[std::string(kKindNames[kind]) + " " + std::to_string(st.error_code())];
    if (!expected) {
      ++unexpected_;
      std::fprintf(stderr, "[%7.1fs] UNEXPECTED %s: %d %s\n", Elapsed(), kKindNames[kind],
                   st.error_code(), st.error_message().c_str());
    }
    if (kind == kStream && st.ok()) window_latency_.push_back(latency_s);
  }

  void ClientLoop(int index, Clock::time_point end) {
    std::mt19937_64 rng(1234 + index);
    while (Clock::now() < end && requests_.fetch_add(1) < o_.max_requests) {
      const int shape = static_cast<int>(rng() % std::size(kShapes));
      const bool sampled = rng() % 4 == 0;
      const uint64_t seed = sampled ? kSampledSeeds[rng() % 2] : 1000 + rng() % 100000;
      const v1::GenerateRequest req = Request(kShapes[shape], seed);
      const int roll = static_cast<int>(rng() % 100);
      const Kind kind = roll < 40   ? kStream
                        : roll < 60 ? kSubmitPoll
                        : roll < 70 ? kClientCancel
                        : roll < 80 ? kDisconnect
                        : roll < 90 ? kDeadline
                                    : kSubmitCancel;
      const auto t0 = Clock::now();
      std::string video;
      int64_t version = 0;
      switch (kind) {
        case kStream: {
          grpc::Status st = Stream(req, 600, &video, &version);
          Record(kind, st, st.ok() && !video.empty(),
                 std::chrono::duration<double>(Clock::now() - t0).count());
          if (st.ok() && sampled) CheckStreamed(shape, seed, version, video);
          break;
        }
        case kClientCancel: {
          grpc::Status st = Stream(req, 600, &video, &version, /*cancel_after_progress=*/2);
          // OK when it finished before the cancel reached the server.
          Record(kind, st, st.error_code() == grpc::StatusCode::CANCELLED || st.ok(), 0);
          break;
        }
        case kDisconnect: {
          grpc::Status st = Stream(req, 600, &video, &version, -1, /*drop_queued=*/true);
          Record(kind, st, st.error_code() == grpc::StatusCode::CANCELLED, 0);
          break;
        }
        case kDeadline: {
          grpc::Status st = Stream(req, 0.25, &video, &version);
          Record(kind, st, st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED || st.ok(), 0);
          break;
        }
        case kSubmitPoll:
        case kSubmitCancel:
          SubmitAndFollow(kind, req, shape, seed, sampled);
          break;
        default:
          break;
      }
    }
  }

  void CheckStreamed(int shape, uint64_t seed, int64_t version, const std::string& video) {
    std::string path;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = path_of_version_.find(version);
      if (it != path_of_version_.end()) path = it->second;
    }
    ++checked_;
    if (path.empty()) return Wrong("streamed on unknown version " + std::to_string(version));
    if (video != refs_.at(path).at(Key(shape, seed))) {
      Wrong("stream " + Key(shape, seed) + " on v" + std::to_string(version) + " (" + path + ")");
    }
  }

  void SubmitAndFollow(Kind kind, v1::GenerateRequest req, int shape, uint64_t seed, bool sampled) {
    v1::SubmitResponse sub;
    {
      auto ctx = Ctx(30);
      grpc::Status st = gen_->Submit(ctx.get(), req, &sub);
      if (!st.ok()) {
        // A full queue is the only refusal a well-formed request may get.
        Record(kind, st, st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED, 0);
        return;
      }
    }
    ++submitted_;
    if (kind == kSubmitCancel) {
      v1::CancelRequest c;
      c.set_request_id(sub.request_id());
      v1::CancelResponse cr;
      auto ctx = Ctx(30);
      (void)gen_->Cancel(ctx.get(), c, &cr);
    }
    // Follow it until it ends: every accepted id must resolve.
    const auto give_up = Clock::now() + std::chrono::minutes(10);
    while (Clock::now() < give_up) {
      v1::GetRequest g;
      g.set_request_id(sub.request_id());
      g.set_include_result(true);
      v1::GetResponse resp;
      auto ctx = Ctx(60);
      grpc::Status st = gen_->Get(ctx.get(), g, &resp);
      if (!st.ok()) {
        Record(kind, st, false, 0);
        ++lost_;
        Log("LOST " + sub.request_id() + ": " + st.error_message());
        return;
      }
      const auto state = resp.state();
      if (state == v1::REQUEST_STATE_DONE) {
        const bool ok = !resp.result().empty();
        Record(kind, st, ok, 0);
        if (sampled && ok) {
          ++checked_;
          const std::string k = Key(shape, seed);
          if (resp.result() != refs_.at(o_.swap_paths[0]).at(k) &&
              resp.result() != refs_.at(o_.swap_paths[1]).at(k)) {
            Wrong("submit " + sub.request_id() + " " + k);
          }
        }
        return;
      }
      if (state == v1::REQUEST_STATE_CANCELLED || state == v1::REQUEST_STATE_FAILED) {
        const bool expected = kind == kSubmitCancel && state == v1::REQUEST_STATE_CANCELLED;
        Record(kind, grpc::Status(static_cast<grpc::StatusCode>(resp.error_code()), ""), expected,
               0);
        if (!expected) Log("submit " + sub.request_id() + " ended: " + resp.error_message());
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    ++lost_;
    Log("LOST " + sub.request_id() + ": not ended after 10 minutes");
  }

  // /proc/PID: resident set (MB) and open descriptors; -1 when the process is gone.
  std::pair<double, int> Resources() const {
    std::ifstream in("/proc/" + std::to_string(o_.pid) + "/status");
    std::string line;
    double rss = -1;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) rss = std::atof(line.c_str() + 6) / 1024.0;
    }
    int fds = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator("/proc/" + std::to_string(o_.pid) + "/fd", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec)) {
      ++fds;
    }
    return {rss, rss < 0 ? -1 : fds};
  }

  void MonitorLoop(Clock::time_point end) {
    std::ofstream csv(o_.out_dir + "/timeline.csv");
    csv << "t_s,rss_mb,fds,requests,stream_done,p50_s,p99_s,unexpected,wrong,lost,swaps\n";
    while (true) {
      const bool last = stop_ || Clock::now() >= end;
      std::vector<double> lat;
      int64_t requests = 0;
      {
        std::lock_guard<std::mutex> l(mu_);
        lat.swap(window_latency_);
        for (int k = 0; k < kKinds; ++k) requests += count_[k];
      }
      std::sort(lat.begin(), lat.end());
      auto pct = [&](double q) {
        return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, size_t(q * lat.size()))];
      };
      const auto [rss, fds] = Resources();
      if (o_.pid > 0 && rss < 0) crashed_ = true;
      Sample s{std::chrono::duration<double>(Clock::now() - soak_start_).count(), rss, fds};
      samples_.push_back(s);
      char row[256];
      std::snprintf(row, sizeof row, "%.0f,%.1f,%d,%" PRId64 ",%zu,%.3f,%.3f,%d,%d,%d,%d", s.t, rss,
                    fds, requests, lat.size(), pct(0.5), pct(0.99), unexpected_.load(),
                    wrong_.load(), lost_.load(), swaps_.load());
      csv << row << "\n" << std::flush;
      Log(std::string("sample ") + row);
      if (last) return;
      const Clock::time_point wake = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(o_.sample_s));
      while (!stop_ && Clock::now() < wake)
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  int Summary() {
    std::ostringstream out;
    int64_t total = 0;
    for (int k = 0; k < kKinds; ++k) total += count_[k];
    out << "requests " << total << " (";
    for (int k = 0; k < kKinds; ++k) out << (k ? ", " : "") << kKindNames[k] << " " << count_[k];
    out << "), submits " << submitted_ << ", sampled videos checked " << checked_ << ", swaps "
        << swaps_ << " (" << swap_failures_ << " failed)\n";
    out << "status counts (kind code):";
    for (const auto& [k, n] : codes_) out << " [" << k << "]=" << n;
    out << "\n";
    // Resources after the warm-up: growth from the first to the mean of the last three samples.
    std::vector<Sample> warm;
    for (const Sample& s : samples_)
      if (s.t >= o_.warmup_min * 60 && s.rss >= 0) warm.push_back(s);
    double growth = 0;
    int fd_min = 0, fd_max = 0;
    if (warm.size() >= 4) {
      const double first = warm.front().rss;
      double tail = 0;
      for (size_t i = warm.size() - 3; i < warm.size(); ++i) tail += warm[i].rss / 3;
      growth = (tail - first) / first;
      fd_min = fd_max = warm.front().fds;
      for (const Sample& s : warm) {
        fd_min = std::min(fd_min, s.fds);
        fd_max = std::max(fd_max, s.fds);
      }
      out << "rss after warm-up: " << first << " MB -> " << tail << " MB (growth " << growth * 100
          << " %); fds " << fd_min << ".." << fd_max << "\n";
    } else {
      out << "too few samples after the warm-up to judge memory\n";
    }
    const bool pass = !crashed_ && wrong_ == 0 && lost_ == 0 && unexpected_ == 0 &&
                      swap_failures_ == 0 && warm.size() >= 4 && growth < 0.05 &&
                      fd_max - fd_min <= 8;
    out << "crashed " << (crashed_ ? "yes" : "no") << ", wrong " << wrong_ << ", lost " << lost_
        << ", unexpected " << unexpected_ << " -> " << (pass ? "PASS" : "FAIL") << "\n";
    std::cout << out.str();
    std::ofstream(o_.out_dir + "/summary.txt") << out.str();
    return pass ? 0 : 1;
  }

  struct Sample {
    double t, rss;
    int fds;
  };

  const Options o_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Generation::Stub> gen_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  Clock::time_point start_, soak_start_;
  std::map<std::string, std::map<std::string, std::string>> refs_;  // path -> key -> video
  std::mutex mu_;
  std::map<int64_t, std::string> path_of_version_;
  int64_t count_[kKinds] = {};
  std::map<std::string, int64_t> codes_;
  std::vector<double> window_latency_;
  std::vector<Sample> samples_;  // the monitor's only
  std::atomic<bool> stop_{false}, crashed_{false};
  std::atomic<int> requests_{0}, unexpected_{0}, wrong_{0}, lost_{0}, swaps_{0}, swap_failures_{0},
      checked_{0}, submitted_{0};
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) out.push_back(part);
  return out;
}

}  // namespace
}  // namespace linvideo::soak

int main(int argc, char** argv) {
  using linvideo::soak::Options;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "usage: linvideo-soak --server=HOST:PORT --swap_paths=A,B --pid=SERVER_PID "
                   "[--token_file=F] [--model=default] [--minutes=30] [--clients=3] "
                   "[--swap_every_s=120] [--warmup_min=5] [--sample_s=15] [--steps=8] "
                   "[--max_requests=100000] [--out_dir=soak-out]\n";
      return 64;
    }
    const std::string k = a.substr(2, eq - 2), v = a.substr(eq + 1);
    if (k == "server") {
      o.server = v;
    } else if (k == "token_file") {
      std::ifstream in(v);
      std::getline(in, o.token);
    } else if (k == "model") {
      o.model = v;
    } else if (k == "swap_paths") {
      o.swap_paths = linvideo::soak::Split(v);
    } else if (k == "out_dir") {
      o.out_dir = v;
    } else if (k == "pid") {
      o.pid = std::atoi(v.c_str());
    } else if (k == "minutes") {
      o.minutes = std::atof(v.c_str());
    } else if (k == "warmup_min") {
      o.warmup_min = std::atof(v.c_str());
    } else if (k == "swap_every_s") {
      o.swap_every_s = std::atof(v.c_str());
    } else if (k == "sample_s") {
      o.sample_s = std::atof(v.c_str());
    } else if (k == "clients") {
      o.clients = std::atoi(v.c_str());
    } else if (k == "steps") {
      o.steps = std::atoi(v.c_str());
    } else if (k == "max_requests") {
      o.max_requests = std::atoi(v.c_str());
    } else {
      std::cerr << "unknown flag --" << k << "\n";
      return 64;
    }
  }
  const bool loopback = o.server.rfind("127.", 0) == 0 || o.server.rfind("localhost:", 0) == 0 ||
                        o.server.rfind("[::1]:", 0) == 0;
  if (!loopback) {
    std::cerr << "linvideo-soak only runs against a loopback server (got " << o.server << ")\n";
    return 64;
  }
  signal(SIGPIPE, SIG_IGN);
  return linvideo::soak::Soak(o).Run();
}
