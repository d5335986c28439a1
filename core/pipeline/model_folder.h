#pragma once
// Model folders: locating the components of a Wan 2.1 text-to-video model on disk and loading each
// one (config + weights through its key map, original or diffusers names auto-detected).
//
// Accepted layouts:
//  * diffusers: model_index.json + transformer/ text_encoder/ tokenizer/ vae/, each with
//    config.json and *.safetensors (single or sharded with *.safetensors.index.json).
//  * official Wan-AI (a Wan2.1-T2V-1.3B/14B folder as downloaded): config.json with the WanModel
//    fields + diffusion_pytorch_model*.safetensors at the root; the VAE and umT5 weights as the
//    release's torch.save files (Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth, read through
//    LibTorch's loader) or as safetensors of the same stems; the tokenizer in google/umt5-xxl/.
//  * a single component folder (transformer/, vae/, text_encoder/) for `linvideo-model forward`.
//
// Thread-compatible free functions; the loaded modules are owned by the caller.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/runtime.h"
#include "core/io/safetensors.h"
#include "core/models/wan/dit.h"
#include "core/models/wan/t5_config.h"
#include "core/models/wan/t5_encoder.h"
#include "core/models/wan/tokenizer.h"
#include "core/models/wan/vae.h"
#include "core/models/wan/vae_config.h"
#include "core/models/wan/wan_config.h"

namespace linvideo::core::pipeline {

enum class ComponentKind { kTransformer, kTextEncoder, kVae, kTokenizer };
const char* ComponentKindName(ComponentKind kind);

// Where one component's config and weights are. `weights_stem` selects the safetensors file(s) in
// `dir` ("" = the only *.safetensors / *.safetensors.index.json there).
struct ComponentPath {
  std::string dir;
  std::string config_file;  // empty: the component's default config (Wan VAE / umT5-XXL)
  std::string weights_stem;
};

struct ModelFolder {
  std::string root;
  bool diffusers = false;
  std::optional<ComponentPath> transformer, text_encoder, vae, tokenizer;
};

// Finds the components under `path` (a whole model or a single component folder). NOT_FOUND /
// INVALID_ARGUMENT say which file is missing and what layouts are accepted.
absl::StatusOr<ModelFolder> ResolveModelFolder(const std::string& path);

absl::StatusOr<wan::WanConfig> ReadDitConfig(const ComponentPath& path);
absl::StatusOr<wan::T5Config> ReadT5Config(const ComponentPath& path);
absl::StatusOr<wan::VaeConfig> ReadVaeConfig(const ComponentPath& path);

// Config + weights -> module in eval mode on `device` (fp32 weights converted to device.dtype for
// the DiT and text encoder; the VAE runs in fp32). Every parameter must be present and no tensor
// unused (the error lists the names).
absl::StatusOr<wan::WanModel> LoadDit(const ComponentPath& path, const DeviceOptions& device);
absl::StatusOr<wan::T5Encoder> LoadTextEncoder(const ComponentPath& path,
                                               const DeviceOptions& device);
absl::StatusOr<wan::WanVae> LoadVae(const ComponentPath& path, const DeviceOptions& device);
absl::StatusOr<std::unique_ptr<wan::T5Tokenizer>> LoadTokenizer(const ComponentPath& path);

// Writes a diffusers-layout model folder (configs + diffusers-named safetensors +
// model_index.json), copying the tokenizer model file. Used by `linvideo-model init` and checkpoint
// export.
struct ModelFolderContents {
  wan::WanConfig dit_config;
  io::TensorMap dit;  // original (official) names
  wan::T5Config t5_config;
  io::TensorMap text_encoder;  // official Wan names
  wan::VaeConfig vae_config;
  io::TensorMap vae;                 // official names
  std::string tokenizer_model_file;  // sentencepiece .model to copy
};
absl::Status WriteModelFolder(const std::string& dir, const ModelFolderContents& contents);

// Copying a model folder while some components' weights are written anew (a converted or
// re-exported model): `WeightsRewrite` names one component's weight files — `stem` selects them in
// `dir` (relative to the model root); an empty stem means the component owns every safetensors
// file of its folder (diffusers layout), written anew under `default_stem`.
struct WeightsRewrite {
  std::string dir;
  std::string stem;
  std::string default_stem;
  std::string OutputStem() const { return stem.empty() ? default_stem : stem; }
  // Whether `rel_file` (relative to the root) is one of this component's weight files
  // (safetensors, shards and index, or a torch.save .pth/.pt that the rewrite replaces).
  bool Covers(const std::string& rel_file) const;
};
WeightsRewrite RewriteOf(const ComponentPath& component, const std::string& root,
                         const std::string& default_stem);
// Copies `from` to `to` (created if needed; files overwritten) except the weight files the
// rewrites cover, which the caller writes (copying them first would double a large model's I/O).
absl::Status CopyModelFolder(const std::string& from, const std::string& to,
                             const std::vector<WeightsRewrite>& rewrites);

// A random-weights model folder for a named config ("tiny", "wan2.1-t2v-1.3b", "wan2.1-t2v-14b"):
// seeded LibTorch initialisation (same seed and thread count -> identical files), weights stored in
// `dtype`. "tiny" also records small serving defaults in model_index.json. Returns the contents'
// parameter counts in `summary` if given.
struct RandomModelOptions {
  std::string config = "tiny";
  uint64_t seed = 0;
  c10::ScalarType dtype = c10::kFloat;
  std::string tokenizer_model_file;  // sentencepiece model copied into tokenizer/
  // The text encoder and VAE of the tiny config (the text encoder at the DiT's text_dim) beside a
  // full-size DiT: CPU smoke runs of the DiT at its real dimensions without umT5-XXL's 5.7B
  // parameters. Small serving defaults (as tiny's) go into model_index.json.
  bool small_companions = false;
};
absl::StatusOr<std::string> WriteRandomModelFolder(const std::string& dir,
                                                   const RandomModelOptions& options);

}  // namespace linvideo::core::pipeline
