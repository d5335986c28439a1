#include "server/memory_budget.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status.h"

namespace linvideo::server {
namespace {

std::string Gib(double bytes) {
  return absl::StrFormat("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
}

// `base` at the largest size the limits accept: the largest multiple of the size steps within
// max_width / max_height, and max_frames.
GenerationParams AtLargestSize(GenerationParams base, const ModelLimits& l) {
  base.width = l.max_width - l.max_width % l.width_multiple();
  base.height = l.max_height - l.max_height % l.height_multiple();
  base.frames = l.max_frames;
  return base;
}

}  // namespace

absl::StatusOr<MemoryBudget> DeriveMemoryBudget(const MemoryBudgetInput& in) {
  const auto& s = in.measured.samples;
  if (s.size() < 2 || s.front().tokens == s.back().tokens) {
    return absl::InvalidArgumentError("memory budget: need steps of two token counts");
  }
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i].tokens < s[i - 1].tokens) {
      return absl::InvalidArgumentError("memory budget: samples must have increasing tokens");
    }
  }
  if (in.margin < 0 || in.margin >= 1 || in.request_tokens <= 0 || in.total_bytes <= 0) {
    return absl::InvalidArgumentError(
        "memory budget: margin must be in [0, 1), request tokens and device memory positive");
  }
  // The per-token cost: the slope between the two samples of equal requests farthest apart in
  // tokens; without such a pair, between the smallest and the largest sample (the per-request
  // cost then rides on the slope).
  const StepMemorySample* lo = &s.front();
  const StepMemorySample* hi = &s.back();
  bool same_requests = false;
  for (size_t i = 0; i < s.size(); ++i) {
    for (size_t j = i + 1; j < s.size(); ++j) {
      if (s[i].requests == s[j].requests && s[j].tokens > s[i].tokens &&
          (!same_requests || s[j].tokens - s[i].tokens > hi->tokens - lo->tokens)) {
        lo = &s[i];
        hi = &s[j];
        same_requests = true;
      }
    }
  }
  const double per_token = static_cast<double>(hi->used_bytes - lo->used_bytes) /
                           static_cast<double>(hi->tokens - lo->tokens);
  // cudaMemGetInfo also counts other processes and allocator rounding: growth below 1 MiB
  // between the samples is noise, not a line to scale from.
  if (!(per_token > 0) || hi->used_bytes - lo->used_bytes < (int64_t{1} << 20)) {
    return absl::FailedPreconditionError(
        absl::StrCat("memory budget: device memory did not grow measurably from ", lo->tokens,
                     " to ", hi->tokens, " step tokens (", lo->used_bytes, " -> ", hi->used_bytes,
                     " bytes used); set scheduler.token_budget and "
                     "scheduler.max_batch by hand"));
  }
  // The per-request cost: what a pair of different request counts grew beyond its tokens.
  double per_request = 0;
  if (same_requests) {
    int best = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      for (size_t j = i + 1; j < s.size(); ++j) {
        const int dn = s[j].requests - s[i].requests;
        if (dn == 0 || std::abs(dn) <= best) continue;
        best = std::abs(dn);
        per_request = std::max(0.0, (static_cast<double>(s[j].used_bytes - s[i].used_bytes) -
                                     per_token * static_cast<double>(s[j].tokens - s[i].tokens)) /
                                        dn);
      }
    }
  }
  const StepMemorySample& first = s.front();
  const double fixed =
      std::max(0.0, static_cast<double>(first.used_bytes - in.measured.resident_bytes) -
                        per_request * first.requests - per_token * first.tokens);
  const double decode = in.overlap_decode ? static_cast<double>(in.measured.decode_bytes) : 0.0;
  const double usable = static_cast<double>(in.total_bytes) * (1.0 - in.margin) -
                        static_cast<double>(in.measured.resident_bytes) -
                        static_cast<double>(in.reserve_bytes) - fixed - decode;
  // A batch of at most max_batch requests and token_budget tokens must fit:
  // per_request · max_batch + per_token · token_budget <= usable. max_batch is what fits of the
  // default request; the largest request must still fit alone within the token budget.
  auto tokens_left = [&](int batch) {
    const double left = usable - per_request * batch;
    return left > 0 ? static_cast<int64_t>(std::floor(left / per_token)) : int64_t{0};
  };
  const double per_default = per_request + per_token * static_cast<double>(in.request_tokens);
  int max_batch = static_cast<int>(std::clamp<double>(
      std::floor(std::max(0.0, usable) / per_default), 1, std::max(1, in.max_batch_cap)));
  while (max_batch > 1 && tokens_left(max_batch) < in.largest_request_tokens) --max_batch;
  const int64_t budget = tokens_left(max_batch);
  MemoryBudget out;
  out.bytes_per_token = per_token;
  out.bytes_per_request = per_request;
  out.fixed_bytes = static_cast<int64_t>(fixed);
  out.usable_bytes = usable;
  out.token_budget = budget;
  if (budget < in.largest_request_tokens) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "device memory fits ", budget, " step tokens (", Gib(in.total_bytes), " total, ",
        Gib(in.measured.resident_bytes), " resident, ", static_cast<int64_t>(per_token),
        " bytes per token, ", Gib(per_request), " per request, margin ", in.margin,
        "), but the largest request the limits allow needs ", in.largest_request_tokens,
        "; lower limits.max_width / max_height / max_frames (or the "
        "model's), scheduler.memory_margin_pct, or use a larger device"));
  }
  out.max_batch = max_batch;
  out.summary = absl::StrCat(
      "token budget ", budget, ", max batch ", out.max_batch, " (", Gib(in.total_bytes),
      " device, ", Gib(in.measured.resident_bytes), " resident, ", static_cast<int64_t>(per_token),
      " bytes per step token + ", Gib(per_request), " per request + ", Gib(fixed), " per step",
      decode > 0 ? absl::StrCat(", ", Gib(decode), " decode reserved") : std::string(),
      in.reserve_bytes > 0 ? absl::StrCat(", ", Gib(in.reserve_bytes), " for hot swaps and caches")
                           : std::string(),
      ", margin ", in.margin, "; default request ", in.request_tokens, " tokens)");
  return out;
}

absl::StatusOr<StepMemory> MeasureStepMemory(Executor& executor, const GenerationParams& request,
                                             const DeviceMemoryProbe& probe, bool decode) {
  StepMemory m;
  probe.release_cached();
  m.resident_bytes = probe.used_bytes();
  const int64_t one = core::params::StepTokens(request, executor.limits().geometry);
  for (int copies : {1, 2}) {
    std::vector<const GenerationParams*> params(copies, &request);
    LV_ASSIGN_OR_RETURN(auto states, executor.Start(params));
    probe.release_cached();  // the text encoder's blocks are not the step's
    std::vector<StepState*> batch;
    for (auto& st : states) batch.push_back(st.get());
    LV_RETURN_IF_ERROR(executor.Step(batch));  // one step shows the step's peak
    m.samples.push_back({one * copies, probe.used_bytes(), copies});
    states.clear();
    probe.release_cached();  // the next probe starts from the resident weights again
  }
  // The largest request alone: with the default request's samples it separates the per-token
  // cost from the per-request one (text states), and it is the size that must fit.
  const ModelLimits& l = executor.limits();
  const absl::StatusOr<GenerationParams> largest =
      core::params::Resolve(AtLargestSize(request, l), l);
  const int64_t large = largest.ok() ? core::params::StepTokens(*largest, l.geometry) : 0;
  if (large > one) {
    LV_ASSIGN_OR_RETURN(auto states, executor.Start({&*largest}));
    probe.release_cached();
    LV_RETURN_IF_ERROR(executor.Step({states[0].get()}));
    m.samples.push_back({large, probe.used_bytes(), 1});
    states.clear();
    probe.release_cached();
  }
  std::stable_sort(
      m.samples.begin(), m.samples.end(),
      [](const StepMemorySample& a, const StepMemorySample& b) { return a.tokens < b.tokens; });
  if (decode) {
    // The decode's own peak: its latents come from the shortest run the model accepts, then the
    // steps' cached blocks are released so only the decode's growth is read.
    GenerationParams shortest = request;
    if (executor.limits().fixed_timesteps.empty()) shortest.steps = 1;
    LV_ASSIGN_OR_RETURN(auto states, executor.Start({&shortest}));
    while (states[0]->step() < states[0]->total_steps()) {
      LV_RETURN_IF_ERROR(executor.Step({states[0].get()}));
    }
    probe.release_cached();
    const int64_t before = probe.used_bytes();
    LV_RETURN_IF_ERROR(executor.Decode(*states[0]).status());
    m.decode_bytes = std::max<int64_t>(0, probe.used_bytes() - before);
    states.clear();
    probe.release_cached();
  }
  return m;
}

int64_t LargestRequestTokens(const ModelLimits& l) {
  GenerationParams largest = AtLargestSize({}, l);
  // Any guidance above 1 runs the second pass; a distilled model runs without it.
  largest.guidance = l.fixed_timesteps.empty() && l.max_guidance > 1 ? l.max_guidance : 1.0;
  return core::params::StepTokens(largest, l.geometry);
}

absl::StatusOr<MemoryBudget> DeriveServingBudget(const std::vector<BudgetModel>& models,
                                                 const DeviceMemoryProbe& probe,
                                                 const ServingBudgetOptions& options) {
  if (models.empty()) return absl::InvalidArgumentError("memory budget: no model loaded");
  struct Measured {
    const BudgetModel* model;
    GenerationParams request;  // its default request, resolved
    StepMemory memory;
  };
  std::vector<Measured> measured;
  for (const BudgetModel& m : models) {
    GenerationParams request;
    request.prompt = "memory probe";
    LV_ASSIGN_OR_RETURN(GenerationParams resolved, core::params::Resolve(request, m.limits));
    auto sm = MeasureStepMemory(*m.executor, resolved, probe, options.overlap_decode);
    if (!sm.ok()) return core::Annotate(sm.status(), absl::StrCat("measuring model ", m.name));
    measured.push_back({&m, std::move(resolved), *std::move(sm)});
  }
  // Every model is resident when the last is measured; each one's share of that is what a hot
  // swap loads again beside it.
  const int64_t resident = measured.back().memory.resident_bytes;
  const int64_t share = resident / static_cast<int64_t>(models.size());
  // The caches were empty when measured; each checkpoint loaded (active, swapping in, or kept for
  // Rollback) may fill its own.
  int64_t caches = 0;
  for (const BudgetModel& m : models) caches += m.executor->cache_bytes_limit();
  caches *= 1 + options.swap_models;
  MemoryBudget out;
  out.token_budget = std::numeric_limits<int64_t>::max();
  out.max_batch = options.max_batch_cap;
  struct Each {
    const BudgetModel* model;
    MemoryBudget budget;  // its own derivation (as if it were served alone)
    int64_t largest = 0;  // its largest request's step tokens
  };
  std::vector<Each> each;
  for (const auto& [model, resolved, sm] : measured) {
    const ModelLimits& l = model->limits;
    MemoryBudgetInput in;
    in.total_bytes = options.total_bytes;
    in.measured = sm;
    in.measured.resident_bytes = resident;
    in.margin = options.margin;
    in.overlap_decode = options.overlap_decode;
    in.reserve_bytes = options.swap_models * share + caches;
    in.request_tokens = core::params::StepTokens(resolved, l.geometry);
    in.largest_request_tokens = LargestRequestTokens(l);
    // The decode was measured at the default size; a decode's memory follows its pixels (its
    // output and temporaries are [F, H, W, 3]), and each worker may decode at once.
    const double pixels = static_cast<double>(l.max_width) * l.max_height *
                          std::max<int64_t>(l.max_frames, 1) /
                          (static_cast<double>(resolved.width) * resolved.height *
                           std::max<int64_t>(resolved.frames, 1));
    in.measured.decode_bytes = static_cast<int64_t>(sm.decode_bytes * std::max(1.0, pixels) *
                                                    std::max(options.decode_workers, 1));
    in.max_batch_cap = options.max_batch_cap;
    auto b = DeriveMemoryBudget(in);
    if (!b.ok()) return core::Annotate(b.status(), absl::StrCat("model ", model->name));
    out.max_batch = std::min(out.max_batch, b->max_batch);
    absl::StrAppend(&out.summary, out.summary.empty() ? "" : "; ", model->name, ": ", b->summary);
    each.push_back({model, *b, in.largest_request_tokens});
  }
  // Mixed running requests: a step of model m holds at least one request of m and up to
  // max_batch − 1 others, each at most the dearest per-request cost of all models (m's included).
  double dearest = 0;
  for (const Each& e : each) dearest = std::max(dearest, e.budget.bytes_per_request);
  auto budget_of = [&](const Each& e, int batch) -> int64_t {
    const double left = e.budget.usable_bytes - e.budget.bytes_per_request - (batch - 1) * dearest;
    return left > 0 ? static_cast<int64_t>(std::floor(left / e.budget.bytes_per_token)) : 0;
  };
  auto fits = [&](int batch) {
    for (const Each& e : each)
      if (budget_of(e, batch) < e.largest) return false;
    return true;
  };
  // At a batch of 1 each model's own derivation already showed its largest request fits.
  while (out.max_batch > 1 && !fits(out.max_batch)) --out.max_batch;
  for (const Each& e : each) {
    const int64_t b = budget_of(e, out.max_batch);
    out.model_token_budgets[e.model->name] = b;
    if (b < out.token_budget) {
      out.token_budget = b;
      out.bytes_per_token = e.budget.bytes_per_token;
      out.fixed_bytes = e.budget.fixed_bytes;
    }
  }
  std::string budgets;
  for (const auto& [name, b] : out.model_token_budgets)
    absl::StrAppend(&budgets, budgets.empty() ? "" : ", ", name, " ", b);
  out.summary = absl::StrCat("token budget per model: ", budgets, "; max batch ", out.max_batch,
                             " (the smallest; per model: ", out.summary, ")");
  return out;
}

std::string ApplyServingBudget(const MemoryBudget& budget, const std::set<std::string>& given,
                               ServerConfig::Scheduler& scheduler) {
  std::string note =
      absl::StrCat("derived max_batch ", budget.max_batch, ", token budget ", budget.token_budget);
  int max_batch = budget.max_batch;
  if (given.count("scheduler.max_batch") > 0 && scheduler.max_batch < max_batch) {
    absl::StrAppend(&note, "; max_batch ", scheduler.max_batch, " as configured");
    max_batch = scheduler.max_batch;
  }
  scheduler.max_batch = max_batch;
  int64_t cap = 0;
  if (given.count("scheduler.token_budget") > 0 && scheduler.token_budget > 0) {
    cap = scheduler.token_budget;
    absl::StrAppend(&note, "; token budgets capped at ", cap, " as configured");
  }
  auto capped = [cap](int64_t v) { return cap > 0 && (v <= 0 || v > cap) ? cap : v; };
  scheduler.token_budget = capped(budget.token_budget);
  scheduler.model_token_budgets.clear();
  for (const auto& [name, tokens] : budget.model_token_budgets) {
    scheduler.model_token_budgets[name] = capped(tokens);
  }
  return note;
}

}  // namespace linvideo::server
