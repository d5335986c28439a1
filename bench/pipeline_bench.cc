// linvideo-pipeline-bench: one video end to end through TextToVideoPipeline at the Wan 2.1 1.3B
// dims with random weights (umT5-XXL, the 1.3B DiT, the Wan 2.1 VAE), with the time split the
// server reports (text, DiT, VAE decode) for three configurations measured in one run:
//   (a) 50 UniPC steps with CFG (guidance 5), every self-attention layer softmax
//   (b) the same with the paper's 16 of 30 layers linear: {2-8, 10-13, 15-16, 23, 25, 30}
//       (1-based, as the paper counts; 0-based here {1-7, 9-12, 14, 15, 22, 24, 29})
//   (c) 4 steps of the fewstep sampler, no CFG (the distilled model's sampler), 16/30 linear
// and prints (a)/(b) and (a)/(c) end to end and for the DiT. Default shape: 832x480, 81 frames
// (21 x 60 x 104 latents, 32,760 tokens), the paper's benchmark setting.
//
// Each configuration first runs a short warm-up request (2 steps at the same shape: kernel
// selection, allocator growth; the shared VAE decodes in the first one only), then `--reps` timed
// requests; medians are printed. On CUDA every
// phase ends with a device synchronisation, so the split is the device's time.
//
// Usage: linvideo-pipeline-bench [--device=cuda|cpu] [--dtype=bf16|fp32] [--vae-dtype=bf16|fp32]
//          [--frames=81 --height=480 --width=832] [--layers=30] [--steps=50] [--reps=1]
//          [--cases=a,b,c] [--text-encoder=umt5-xxl|tiny] [--threads=N]
//          [--tokenizer=models/tokenizer/spiece.model] (run from the repository root)
//   --layers below 30 builds fewer DiT blocks (linear layers: those of the paper's set below it).
//   --text-encoder=tiny swaps umT5-XXL (5.7B parameters, ~1 minute to build) for a small encoder
//     of the same output width (the umT5 vocabulary, 2 small blocks): for quick runs; the text
//     column is then not Wan's.
//   A CPU run at a small shape is the smoke test: --device=cpu --dtype=fp32 --frames=5
//     --height=64 --width=64 --layers=2 --steps=3 --text-encoder=tiny.

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/types.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/common/runtime.h"
#include "core/models/wan/dit.h"
#include "core/models/wan/t5_encoder.h"
#include "core/models/wan/tokenizer.h"
#include "core/models/wan/vae.h"
#include "core/pipeline/text_to_video.h"

namespace {

namespace wan = linvideo::core::wan;
namespace pipeline = linvideo::core::pipeline;
using linvideo::core::DeviceOptions;
using linvideo::core::params::GenerationParams;
using linvideo::core::params::ModelLimits;
using linvideo::core::params::SamplerKind;
using Clock = std::chrono::steady_clock;

// The paper's 16 linear layers of Wan 1.3B, 0-based.
const std::set<int64_t> kPaperLinearLayers = {1,  2,  3,  4,  5,  6,  7,  9,
                                              10, 11, 12, 14, 15, 22, 24, 29};

struct Options {
  c10::Device device = c10::Device(c10::kCUDA);
  c10::ScalarType dtype = c10::kBFloat16;
  c10::ScalarType vae_dtype = c10::kBFloat16;
  int64_t frames = 81, height = 480, width = 832, layers = 30, steps = 50, reps = 1, threads = 0;
  std::string cases = "a,b,c";
  std::string text_encoder = "umt5-xxl";
  std::string tokenizer = "models/tokenizer/spiece.model";  // umT5's, shipped in the repo
};

struct Split {
  double text = 0, dit = 0, decode = 0, step = 0;  // seconds; step: median DiT step
  double total() const { return text + dit + decode; }
};

void Sync(const c10::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

template <typename T>
T OrDie(absl::StatusOr<T> v, const char* what) {
  if (!v.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, v.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(v);
}

void OrDie(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

// One request through the step-level API the server drives, timed phase by phase.
Split RunOnce(pipeline::TextToVideoPipeline& p, const GenerationParams& requested,
              const c10::Device& device, bool decode = true) {
  const GenerationParams params = OrDie(p.Resolve(requested), "resolve");
  const bool cfg = linvideo::core::params::UsesCfg(params);
  Split s;
  Sync(device);
  auto t0 = Clock::now();
  std::vector<std::string> texts = {params.prompt};
  if (cfg) texts.push_back(params.negative_prompt);
  std::vector<torch::Tensor> emb = OrDie(p.EncodeText(texts), "encode text");
  Sync(device);
  auto t1 = Clock::now();
  s.text = std::chrono::duration<double>(t1 - t0).count();
  // The DiT column: the text state (text embedding, cross-attention K/V) and every step.
  auto state = OrDie(p.InitRequest(params, emb[0], cfg ? emb[1] : torch::Tensor()), "init");
  std::vector<double> steps;
  while (!state->done()) {
    auto ts = Clock::now();
    OrDie(p.Step({state.get()}), "step");
    Sync(device);
    steps.push_back(std::chrono::duration<double>(Clock::now() - ts).count());
  }
  auto t2 = Clock::now();
  s.dit = std::chrono::duration<double>(t2 - t1).count();
  s.step = Median(steps);
  if (!decode) return s;
  torch::Tensor frames = OrDie(p.Decode(*state), "decode");  // uint8 on the CPU
  s.decode = std::chrono::duration<double>(Clock::now() - t2).count();
  if (frames.size(0) != params.frames) {
    std::fprintf(stderr, "decoded %ld frames, expected %ld\n", static_cast<long>(frames.size(0)),
                 static_cast<long>(params.frames));
    std::exit(1);
  }
  return s;
}

// The runtime's own parsers (core/common/runtime.h), the error kept as a flag error.
template <typename T>
bool Parse(absl::StatusOr<T> parsed, T* out) {
  if (!parsed.ok()) return false;
  *out = *parsed;
  return true;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq),
                      value = eq == std::string::npos ? "" : arg.substr(eq + 1);
    std::map<std::string, int64_t*> ints = {{"--frames", &o.frames},  {"--height", &o.height},
                                            {"--width", &o.width},    {"--layers", &o.layers},
                                            {"--steps", &o.steps},    {"--reps", &o.reps},
                                            {"--threads", &o.threads}};
    bool ok = true;
    if (auto it = ints.find(name); it != ints.end()) {
      ok = absl::SimpleAtoi(value, it->second) && *it->second >= 0;
    } else if (name == "--device") {
      ok = Parse(linvideo::core::ParseDevice(value), &o.device);
    } else if (name == "--dtype") {
      ok = Parse(linvideo::core::ParseDtype(value), &o.dtype);
    } else if (name == "--vae-dtype") {
      ok = Parse(linvideo::core::ParseDtype(value), &o.vae_dtype);
    } else if (name == "--cases") {
      o.cases = value;
      for (absl::string_view c : absl::StrSplit(value, ','))
        ok = ok && (c == "a" || c == "b" || c == "c");
    } else if (name == "--tokenizer") {
      o.tokenizer = value;
    } else if (name == "--text-encoder") {
      o.text_encoder = value;
      ok = value == "umt5-xxl" || value == "tiny";
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "bad flag %s (allowed: --device=cpu|cuda[:N] --dtype=bf16|fp32 "
                   "--vae-dtype=bf16|fp32 --frames --height --width --layers --steps --reps "
                   "--threads (integers) --cases=a,b,c --text-encoder=umt5-xxl|tiny "
                   "--tokenizer=FILE)\n",
                   arg.c_str());
      std::exit(2);
    }
  }
  if (o.layers < 1 || o.layers > 30 || o.steps < 1 || o.reps < 1) {
    std::fprintf(stderr, "--layers must be 1..30, --steps and --reps >= 1\n");
    std::exit(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseArgs(argc, argv);
  if (o.device.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "--device=cuda: no CUDA device (or a CPU-only LibTorch)\n");
    return 2;
  }
  const int threads = linvideo::core::InitRuntime(static_cast<int>(o.threads));
  c10::InferenceMode guard;
  const DeviceOptions runtime{o.device, o.dtype};

  auto t_build = Clock::now();
  wan::WanConfig dit_config = OrDie(wan::NamedDitConfig("wan2.1-t2v-1.3b"), "DiT config");
  dit_config.SetNumLayers(o.layers);
  wan::WanConfig linear_config = dit_config;
  int linear_layers = 0;
  for (int64_t i = 0; i < o.layers; ++i) {
    if (kPaperLinearLayers.count(i)) {
      linear_config.attention_kinds[i] = linvideo::core::attention::AttentionKind::kLinear;
      ++linear_layers;
    }
  }
  auto make_dit = [&](const wan::WanConfig& c) {
    wan::WanModel m = OrDie(wan::CreateWanModel(c), "DiT");
    OrDie(m->ToRuntime(runtime), "DiT to runtime");
    m->eval();
    return m;
  };
  wan::T5Config t5_config = OrDie(wan::T5Config::Named(o.text_encoder), "T5 config");
  if (o.text_encoder == "tiny") {
    t5_config.dim = t5_config.dim_attn = dit_config.text_dim;
    t5_config.vocab = 256384;  // umT5's vocabulary, so the real tokenizer fits
  }
  wan::T5Encoder t5 = OrDie(wan::CreateT5Encoder(t5_config, runtime), "text encoder");
  wan::WanVae vae =
      OrDie(wan::CreateWanVae(OrDie(wan::VaeConfig::Named("wan2.1"), "VAE config")), "VAE");
  vae->to(o.device, o.vae_dtype);
  vae->eval();
  wan::WanModel softmax_dit = make_dit(dit_config);
  wan::WanModel linear_dit = make_dit(linear_config);
  Sync(o.device);
  const double build_s = std::chrono::duration<double>(Clock::now() - t_build).count();

  ModelLimits limits;  // Wan's: 832x480x81 defaults, UniPC, shift 5
  ModelLimits fewstep = limits;
  fewstep.fixed_timesteps = {1000, 750, 500, 250};
  fewstep.default_sampler = SamplerKind::kFewStep;
  fewstep.default_steps = 4;
  fewstep.default_guidance = 1.0;
  auto make = [&](wan::WanModel dit, const ModelLimits& l) {
    auto tok = OrDie(wan::T5Tokenizer::Create(o.tokenizer), "tokenizer");
    return OrDie(pipeline::TextToVideoPipeline::FromComponents(dit, t5, std::move(tok), vae, l),
                 "pipeline");
  };

  GenerationParams request;
  request.prompt = "a large red circle moves to the right on a white background";
  request.negative_prompt = "blurry, low quality";
  request.width = o.width;
  request.height = o.height;
  request.frames = o.frames;
  request.seed = 42;
  const int64_t tokens = ((o.frames - 1) / 4 + 1) * (o.height / 16) * (o.width / 16);

  std::printf(
      "linvideo-pipeline-bench: %s %s (VAE %s), %ldx%ld, %ld frames (%ld tokens), %ld/30 "
      "layers (%d linear in b, c), text encoder %s, %d threads, build %.1f s\n",
      o.device.str().c_str(), c10::toString(o.dtype), c10::toString(o.vae_dtype),
      static_cast<long>(o.width), static_cast<long>(o.height), static_cast<long>(o.frames),
      static_cast<long>(tokens), static_cast<long>(o.layers), linear_layers, o.text_encoder.c_str(),
      threads, build_s);
  std::printf("%-4s %-28s %6s %8s %8s %8s %8s %8s\n", "case", "config", "steps", "text_s", "dit_s",
              "step_s", "decode_s", "total_s");

  const std::string share = std::to_string(linear_layers) + "/" + std::to_string(o.layers);
  std::map<std::string, Split> results;
  for (absl::string_view c : absl::StrSplit(o.cases, ',')) {
    GenerationParams r = request;
    std::unique_ptr<pipeline::TextToVideoPipeline> p;
    std::string label;
    if (c == "a" || c == "b") {
      r.steps = o.steps;
      r.guidance = 5.0;
      r.sampler = SamplerKind::kUniPC;
      p = make(c == "a" ? softmax_dit : linear_dit, limits);
      label = c == "a" ? "UniPC CFG, all softmax" : "UniPC CFG, " + share + " linear";
    } else {
      r.steps = 4;
      r.guidance = 1.0;
      r.sampler = SamplerKind::kFewStep;
      p = make(linear_dit, fewstep);
      label = "fewstep, no CFG, " + share + " linear";
    }
    GenerationParams warm = r;
    if (c != "c") warm.steps = 2;
    RunOnce(*p, warm, o.device, /*decode=*/results.empty());  // the VAE is shared: warm it once
    std::vector<Split> runs;
    for (int64_t i = 0; i < o.reps; ++i) runs.push_back(RunOnce(*p, r, o.device));
    auto median = [&](double Split::*field) {
      std::vector<double> v;
      for (const Split& s : runs) v.push_back(s.*field);
      return Median(v);
    };
    Split m{median(&Split::text), median(&Split::dit), median(&Split::decode),
            median(&Split::step)};
    results[std::string(c)] = m;
    std::printf("(%s)  %-28s %6ld %8.3f %8.3f %8.4f %8.3f %8.3f\n", std::string(c).c_str(),
                label.c_str(), static_cast<long>(r.steps), m.text, m.dit, m.step, m.decode,
                m.total());
    std::fflush(stdout);
  }
  if (results.count("a")) {
    const Split& a = results["a"];
    for (const char* other : {"b", "c"}) {
      if (!results.count(other)) continue;
      const Split& x = results[other];
      std::printf("(a)/(%s): end to end %.2fx, DiT %.2fx, DiT step %.2fx\n", other,
                  a.total() / x.total(), a.dit / x.dit, a.step / x.step);
    }
  }
  return 0;
}
