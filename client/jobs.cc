// `linvideo jobs ...`: post-training jobs (linvideo.v1.Jobs): start, list, get, watch, cancel.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli.h"

namespace linvideo::client {
namespace {

std::string StateName(v1::JobState s) {
  std::string n = v1::JobState_Name(s);
  if (n.rfind("JOB_", 0) == 0) n = n.substr(4);
  for (char& c : n) c = static_cast<char>(std::tolower(c));
  return n;
}

bool Terminal(v1::JobState s) {
  return s == v1::JOB_SUCCEEDED || s == v1::JOB_FAILED || s == v1::JOB_CANCELLED ||
         s == v1::JOB_GATE_FAILED;
}

std::string Duration(double s) {
  if (s < 0) return "?";
  if (s < 90) return absl::StrFormat("%.0fs", s);
  if (s < 5400) return absl::StrFormat("%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  return absl::StrFormat("%.1fh", s / 3600);
}

std::string Scores(const google::protobuf::Map<std::string, double>& m) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : m) parts.push_back(absl::StrFormat("%s=%.4g", k, v));
  std::sort(parts.begin(), parts.end());
  return absl::StrJoin(parts, " ");
}

// One line per job (list) or the whole job (get / the end of watch).
void PrintJob(const v1::Job& j, bool full) {
  const v1::JobProgress& p = j.progress();
  std::cout << absl::StrFormat("%-20s %-8s %-11s %-12s %3.0f%%  base=%s", j.id(), j.kind(),
                               StateName(j.state()), p.stage(), 100 * p.fraction(),
                               j.spec().base());
  if (!j.output_path().empty()) std::cout << " output=" << j.output_path();
  std::cout << "\n";
  if (!full) return;
  if (p.total() > 0) {
    std::cout << absl::StrFormat("  step %d/%d, ETA %s\n", p.step(), p.total(),
                                 Duration(p.eta_s()));
  }
  if (!p.losses().empty()) std::cout << "  losses: " << Scores(p.losses()) << "\n";
  if (p.r_size() > 0) {
    std::vector<std::string> rs;
    for (int i = 0; i < p.r_size(); ++i) {
      rs.push_back(
          absl::StrFormat("%d:%.3f", i < p.gate_layers_size() ? p.gate_layers(i) : i, p.r(i)));
    }
    std::cout << "  r per layer: " << absl::StrJoin(rs, " ") << "\n";
  }
  if (j.checkpoint_version() > 0) {
    std::cout << "  active as version " << j.checkpoint_version() << "\n";
  }
  if (!j.base_scores().empty()) {
    std::cout << "  gate: base " << Scores(j.base_scores()) << "\n        output "
              << Scores(j.output_scores()) << "\n";
  }
  std::cout << absl::StrFormat("  attempts %d, disk %.1f MB\n", j.attempts(), j.disk_bytes() / 1e6);
  if (!j.error().empty()) std::cout << "  error: " << j.error() << "\n";
}

// A progress bar on stderr while the job runs; the job at the end on stdout.
int Watch(const Client& c, const std::string& id) {
  v1::WatchJobRequest req;
  req.set_id(id);
  grpc::ClientContext ctx;  // no deadline: a conversion takes as long as it takes
  if (!c.token.empty()) ctx.AddMetadata("authorization", "Bearer " + c.token);
  auto reader = c.jobs->WatchJob(&ctx, req);
  v1::Job job;
  bool any = false;
  const bool tty = isatty(2);
  std::string last_state;
  while (reader->Read(&job)) {
    any = true;
    const v1::JobProgress& p = job.progress();
    const int width = 30;
    const int filled = static_cast<int>(p.fraction() * width + 0.5);
    std::string line = absl::StrFormat("[%s%s] %3.0f%% %s %s", std::string(filled, '#'),
                                       std::string(width - filled, '-'), 100 * p.fraction(),
                                       StateName(job.state()), p.stage());
    if (p.total() > 0) absl::StrAppendFormat(&line, " %d/%d", p.step(), p.total());
    if (p.losses().count("gap")) absl::StrAppendFormat(&line, " gap %.3g", p.losses().at("gap"));
    if (p.r_size() > 0) {
      std::vector<std::string> rs;
      for (double r : p.r()) rs.push_back(absl::StrFormat("%.2f", r));
      absl::StrAppend(&line, " r [", absl::StrJoin(rs, " "), "]");
    }
    if (p.eta_s() >= 0 && !Terminal(job.state()))
      absl::StrAppend(&line, " ETA ", Duration(p.eta_s()));
    const std::string state = StateName(job.state()) + p.stage();
    if (tty) {
      std::cerr << "\r" << line << "\033[K" << (state != last_state ? "\n" : "") << std::flush;
    } else {
      std::cerr << line << "\n";
    }
    last_state = state;
  }
  grpc::Status st = reader->Finish();
  if (tty) std::cerr << "\n";
  if (!st.ok()) return Fail(st);
  if (!any) return 1;
  PrintJob(job, true);
  return job.state() == v1::JOB_SUCCEEDED ? 0 : 1;
}

bool BuildSpec(const Args& a, v1::JobSpec* spec, std::string* error) {
  const std::string kind = a.words.size() > 1 ? a.words[1] : "";
  if (kind != "convert" && kind != "distill") {
    *error = "jobs start: expected a job kind: convert or distill";
    return false;
  }
  spec->set_job_id(a.Get("id"));
  spec->set_base(a.Get("base", "default"));
  if (kind == "distill") {
    v1::DistillJob* d = spec->mutable_distill();
    for (absl::string_view t : absl::StrSplit(a.Get("timesteps"), ',', absl::SkipEmpty())) {
      int32_t v = 0;
      if (!absl::SimpleAtoi(t, &v)) {
        *error =
            absl::StrCat("--timesteps: expected integers like 1000,750,500,250, got '", t, "'");
        return false;
      }
      d->add_timesteps(v);
    }
    d->set_steps(a.Int("steps", 0, INT64_MIN, INT64_MAX));
    d->set_fake_updates(static_cast<int32_t>(a.Int("fake_updates", 0)));
    d->set_real_guidance(a.Num("real_guidance", 0));
    d->set_real(a.Get("real"));
    d->set_lr(a.Num("lr", 0));
    d->set_fake_lr(a.Num("fake_lr", 0));
    d->set_seed(a.Uint64("seed", 0));
    d->set_batch(static_cast<int32_t>(a.Int("batch", 0)));
    d->set_trajectories(static_cast<int32_t>(a.Int("trajectories", 0)));
    d->set_trajectory_steps(static_cast<int32_t>(a.Int("trajectory_steps", 0)));
    d->set_checkpoint_every(static_cast<int32_t>(a.Int("checkpoint_every", 0)));
  }
  if (kind == "convert") {
    v1::ConvertJob* c = spec->mutable_convert();
    c->set_linear_layers(static_cast<int32_t>(a.Int("linear_layers", 0)));
    c->set_select(a.Get("select"));
    c->set_pinned(a.Get("pinned"));
    c->set_objective(a.Get("objective"));
    c->set_steps(a.Int("steps", 0, INT64_MIN, INT64_MAX));
    c->set_lr(a.Num("lr", 0));
    c->set_seed(a.Uint64("seed", 0));
    c->set_batch(static_cast<int32_t>(a.Int("batch", 0)));
    c->set_trajectories(static_cast<int32_t>(a.Int("trajectories", 0)));
    c->set_trajectory_steps(static_cast<int32_t>(a.Int("trajectory_steps", 0)));
    c->set_checkpoint_every(static_cast<int32_t>(a.Int("checkpoint_every", 0)));
  }
  spec->set_output_name(a.Get("output_name"));
  spec->set_activate(a.Has("activate") && a.Get("activate") != "false");
  spec->set_activate_as(a.Get("activate_as"));
  v1::QualityGate* g = spec->mutable_gate();
  g->set_prompts(a.Get("gate_prompts"));
  g->set_seeds(static_cast<int32_t>(a.Int("gate_seeds", 0)));
  g->set_steps(static_cast<int32_t>(a.Int("gate_steps", 0)));
  g->set_min_psnr(a.Num("gate_min_psnr", 0));
  for (absl::string_view item : absl::StrSplit(a.Get("gate_max_drop"), ',', absl::SkipEmpty())) {
    std::vector<std::string> kv = absl::StrSplit(item, ':');
    double v;
    if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &v)) {
      *error = absl::StrCat("--gate_max_drop: expected SCORE:DROP,... (e.g. adherence:0.05), got '",
                            item, "'");
      return false;
    }
    (*g->mutable_max_drop())[kv[0]] = v;
  }
  return true;
}

}  // namespace

int CmdJobs(const Args& a) {
  const std::string sub = a.words.empty() ? "" : a.words[0];
  const std::string id = a.Has("id") ? a.Get("id") : (a.words.size() > 1 ? a.words[1] : "");
  Client c = Connect(a);
  grpc::Status st;
  if (sub == "start") {
    v1::StartJobRequest req;
    std::string error;
    if (!BuildSpec(a, req.mutable_spec(), &error)) {
      std::cerr << error << "\n";
      return 64;
    }
    v1::Job job;
    st = c.jobs->StartJob(c.Context().get(), req, &job);
    if (!st.ok()) return Fail(st);
    std::cout << "job " << job.id() << " " << StateName(job.state()) << "\n";
    return a.Has("watch") ? Watch(c, job.id()) : 0;
  }
  if (sub == "list") {
    v1::ListJobsRequest req;
    if (a.Has("state")) {
      v1::JobState s;
      std::string name = "JOB_" + a.Get("state");
      for (char& ch : name) ch = static_cast<char>(std::toupper(ch));
      if (!v1::JobState_Parse(name, &s)) {
        std::cerr << "--state: allowed queued, running, validating, succeeded, failed, cancelled, "
                     "gate_failed\n";
        return 64;
      }
      req.set_state(s);
    }
    v1::ListJobsResponse r;
    st = c.jobs->ListJobs(c.Context().get(), req, &r);
    if (!st.ok()) return Fail(st);
    for (const v1::Job& j : r.jobs()) PrintJob(j, false);
    return 0;
  }
  if (sub == "get" || sub == "watch" || sub == "cancel") {
    if (id.empty()) {
      std::cerr << "jobs " << sub << ": give the job id (--id=ID)\n";
      return 64;
    }
    if (sub == "watch") return Watch(c, id);
    v1::Job job;
    if (sub == "get") {
      v1::GetJobRequest req;
      req.set_id(id);
      st = c.jobs->GetJob(c.Context().get(), req, &job);
    } else {
      v1::CancelJobRequest req;
      req.set_id(id);
      st = c.jobs->CancelJob(c.Context().get(), req, &job);
    }
    if (!st.ok()) return Fail(st);
    PrintJob(job, true);
    if (sub == "get" && !job.log_tail().empty()) std::cout << "  log:\n" << job.log_tail() << "\n";
    return 0;
  }
  std::cerr << "jobs: expected start convert | start distill | list | get | watch | cancel\n";
  return 64;
}

}  // namespace linvideo::client
