#include "server/fake_executor.h"

#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"

namespace linvideo::server {
namespace {

class FakeState : public StepState {
 public:
  GenerationParams params;
  int64_t done_steps = 0;
  uint64_t acc = 0;  // evolves per step; only depends on this request's own history
  int64_t step() const override { return done_steps; }
  int64_t total_steps() const override { return params.steps; }
};

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

}  // namespace

FakeExecutor::FakeExecutor(const FakeExecutorOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<Executor>> FakeExecutor::FromDir(const std::string& dir) {
  const std::string path = dir + "/fake_model.json";
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(absl::StrCat(path, " not found (a fake model folder needs it)"));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is corrupt: not a JSON object"));
  }
  FakeExecutorOptions o;
  ModelLimits& l = o.limits;
  l.max_width = l.max_height = 256;
  l.max_frames = 33;
  l.max_steps = 50;
  l.default_width = l.default_height = 32;
  l.default_frames = 5;
  l.default_steps = 4;
  l.text_len = 16;
  try {
    o.step_ms = j.value("step_ms", o.step_ms);
    o.item_ms = j.value("item_ms", o.item_ms);
    o.decode_ms = j.value("decode_ms", o.decode_ms);
    o.salt = j.value("salt", o.salt);
    o.fail_start_prompt = j.value("fail_start_prompt", o.fail_start_prompt);
    o.oom_step_prompt = j.value("oom_step_prompt", o.oom_step_prompt);
    o.max_step_batch = j.value("max_step_batch", o.max_step_batch);
    o.noise = j.value("noise", o.noise);
    l.max_width = j.value("max_width", l.max_width);
    l.max_height = j.value("max_height", l.max_height);
    l.max_frames = j.value("max_frames", l.max_frames);
    l.max_steps = j.value("max_steps", l.max_steps);
    l.default_steps = j.value("default_steps", l.default_steps);
    // A fake distilled model: {"sampler": "fewstep", "timesteps": [1000, 750, 500, 250]}.
    absl::Status declared = core::params::DeclareSampler(
        j.value("sampler", std::string()), j.value("timesteps", std::vector<int64_t>()), l);
    if (!declared.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", declared.message()));
    }
    if (j.value("fail_warmup", false))
      return absl::FailedPreconditionError("fake model marked broken");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is corrupt: ", e.what()));
  }
  return std::unique_ptr<Executor>(new FakeExecutor(o));
}

absl::StatusOr<std::vector<std::unique_ptr<StepState>>> FakeExecutor::Start(
    const std::vector<const GenerationParams*>& params) {
  std::vector<std::unique_ptr<StepState>> out;
  for (const GenerationParams* p : params) {
    if (!options_.fail_start_prompt.empty() && p->prompt == options_.fail_start_prompt) {
      return absl::InternalError(absl::StrCat("fake: cannot start '", p->prompt, "'"));
    }
    auto s = std::make_unique<FakeState>();
    s->params = *p;
    s->acc = Mix(std::hash<std::string>()(p->prompt) ^ Mix(p->seed) ^ Mix(options_.salt + 1) ^
                 Mix(static_cast<uint64_t>(p->width * 7 + p->height * 13 + p->frames)));
    out.push_back(std::move(s));
  }
  return out;
}

absl::Status FakeExecutor::Step(const std::vector<StepState*>& batch) {
  std::this_thread::sleep_for(
      std::chrono::milliseconds(options_.step_ms + options_.item_ms * batch.size()));
  if (options_.max_step_batch > 0 && static_cast<int>(batch.size()) > options_.max_step_batch) {
    return absl::ResourceExhaustedError(
        absl::StrCat("fake: Step: out of memory for a batch of ", batch.size()));
  }
  for (StepState* b : batch) {
    if (!options_.oom_step_prompt.empty() &&
        static_cast<FakeState*>(b)->params.prompt == options_.oom_step_prompt) {
      return absl::ResourceExhaustedError("fake: Step: out of memory");
    }
  }
  for (StepState* b : batch) {
    auto* s = static_cast<FakeState*>(b);
    if (s->done()) return absl::InternalError("Step on a finished request");
    s->acc = Mix(s->acc + static_cast<uint64_t>(s->done_steps));
    ++s->done_steps;
  }
  ++steps_run_;
  return absl::OkStatus();
}

absl::StatusOr<media::VideoFrames> FakeExecutor::Decode(const StepState& state) {
  const auto& s = static_cast<const FakeState&>(state);
  if (!s.done()) return absl::InternalError("Decode before the last step");
  if (options_.decode_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.decode_ms));
  media::VideoFrames v;
  v.frames = static_cast<int>(s.params.frames);
  v.height = static_cast<int>(s.params.height);
  v.width = static_cast<int>(s.params.width);
  v.rgb.resize(static_cast<size_t>(v.frames) * v.height * v.width * 3);
  // Smooth gradients (encode well) whose offsets depend on the request's final state.
  const uint64_t h = s.acc;
  if (options_.noise) {
    uint64_t x = h;
    for (uint8_t& c : v.rgb) {
      x = Mix(x + 1);
      c = static_cast<uint8_t>(x >> 56);
    }
    return v;
  }
  for (int f = 0; f < v.frames; ++f) {
    for (int y = 0; y < v.height; ++y) {
      for (int x = 0; x < v.width; ++x) {
        uint8_t* px = &v.rgb[((static_cast<size_t>(f) * v.height + y) * v.width + x) * 3];
        px[0] = static_cast<uint8_t>((h & 0xff) + x * 2 + f * 8);
        px[1] = static_cast<uint8_t>(((h >> 8) & 0xff) + y * 2);
        px[2] = static_cast<uint8_t>(((h >> 16) & 0xff) + (x + y) + f * 4);
      }
    }
  }
  return v;
}

}  // namespace linvideo::server
