// linvideo-generate: offline text-to-video with a model folder, written as MP4, WebM or PNG frames.

#include <chrono>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "core/common/runtime.h"
#include "core/common/status.h"
#include "core/pipeline/text_to_video.h"
#include "media/bytes_io.h"
#include "media/png.h"
#include "media/video_encoder.h"
#include "tools/flags.h"

namespace {

using linvideo::tools::Flags;

constexpr char kUsage[] =
    "usage: linvideo-generate --model DIR --prompt TEXT -o OUT [flags]\n"
    "  --negative-prompt TEXT   (default: empty)\n"
    "  --frames N               4k+1 (default: the model's)\n"
    "  --height H --width W     multiples of 16 (default: the model's)\n"
    "  --steps N --guidance G --shift S --sampler unipc|euler|fewstep --seed S\n"
    "  --fps N (16) --format mp4|webm|png (from OUT's extension; png writes a contact sheet and\n"
    "           OUT_frames/NNN.png)\n"
    "  --contact-sheet FILE.png  also write a contact sheet\n"
    "  --device cpu|cuda --dtype fp32|bf16 --threads N (0 = all cores)\n";

absl::Status Run(const std::vector<std::string>& args) {
  LV_ASSIGN_OR_RETURN(
      Flags flags,
      Flags::Parse(args, {"model", "prompt", "negative-prompt", "frames", "height", "width",
                          "steps", "guidance", "shift", "sampler", "seed", "fps", "format",
                          "output", "contact-sheet", "device", "dtype", "threads"}));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", flags.positional()[0], "'\n", kUsage));
  }
  namespace lp = linvideo::core::pipeline;
  lp::PipelineOptions options;
  LV_ASSIGN_OR_RETURN(options.model_dir, flags.Required("model"));
  LV_ASSIGN_OR_RETURN(options.device.device,
                      linvideo::core::ParseDevice(flags.Get("device", "cpu")));
  LV_ASSIGN_OR_RETURN(options.device.dtype, linvideo::core::ParseDtype(flags.Get("dtype", "fp32")));
  LV_ASSIGN_OR_RETURN(int64_t threads, flags.GetInt("threads", 0));
  options.threads = static_cast<int>(threads);
  std::string out = flags.Get("output");
  if (out.empty()) return absl::InvalidArgumentError("missing -o OUT (output file)");

  lp::GenerationParams p;
  LV_ASSIGN_OR_RETURN(p.prompt, flags.Required("prompt"));
  p.negative_prompt = flags.Get("negative-prompt");
  LV_ASSIGN_OR_RETURN(p.frames, flags.GetInt("frames", 0));
  LV_ASSIGN_OR_RETURN(p.height, flags.GetInt("height", 0));
  LV_ASSIGN_OR_RETURN(p.width, flags.GetInt("width", 0));
  LV_ASSIGN_OR_RETURN(p.steps, flags.GetInt("steps", 0));
  LV_ASSIGN_OR_RETURN(p.guidance, flags.GetDouble("guidance", linvideo::core::params::kUseDefault));
  LV_ASSIGN_OR_RETURN(p.shift, flags.GetDouble("shift", linvideo::core::params::kUseDefault));
  LV_ASSIGN_OR_RETURN(int64_t seed, flags.GetInt("seed", 0));
  p.seed = static_cast<uint64_t>(seed);
  if (flags.Has("sampler")) {  // unset: the model's declared sampler
    LV_ASSIGN_OR_RETURN(p.sampler,
                        linvideo::core::sampling::ParseSamplerKind(flags.Get("sampler")));
  }
  LV_ASSIGN_OR_RETURN(int64_t fps, flags.GetInt("fps", 16));

  std::string format = flags.Get("format");
  if (format.empty()) {
    format = std::filesystem::path(out).extension().string();
    if (!format.empty()) format = format.substr(1);
  }
  if (format != "mp4" && format != "webm" && format != "png") {
    return absl::InvalidArgumentError(
        absl::StrCat("output format '", format, "' is not allowed; use mp4, webm or png"));
  }
  linvideo::media::EncodeOptions encode;
  encode.fps = static_cast<int>(fps);
  if (format == "webm") encode.container = linvideo::media::Container::kWebm;
  LV_RETURN_IF_ERROR(linvideo::media::ValidateEncodeOptions(encode));

  const auto start = std::chrono::steady_clock::now();
  LV_ASSIGN_OR_RETURN(auto pipeline, lp::TextToVideoPipeline::Create(options));
  const auto loaded = std::chrono::steady_clock::now();
  LV_ASSIGN_OR_RETURN(auto videos, pipeline->Generate({p}));
  const auto generated = std::chrono::steady_clock::now();
  const torch::Tensor& frames = videos[0];  // [F, H, W, 3] uint8
  linvideo::media::FrameView view{frames.data_ptr<uint8_t>(), static_cast<int>(frames.size(0)),
                                  static_cast<int>(frames.size(1)),
                                  static_cast<int>(frames.size(2))};
  if (format == "png") {
    LV_ASSIGN_OR_RETURN(auto pngs, linvideo::media::EncodePngFrames(view));
    const std::filesystem::path dir = out + "_frames";
    std::filesystem::create_directories(dir);
    for (size_t i = 0; i < pngs.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof(name), "%03zu.png", i);
      LV_RETURN_IF_ERROR(linvideo::media::SaveBytes((dir / name).string(), pngs[i]));
    }
    LV_ASSIGN_OR_RETURN(std::string sheet, linvideo::media::ContactSheet(view));
    LV_RETURN_IF_ERROR(linvideo::media::SaveBytes(out, sheet));
  } else {
    LV_ASSIGN_OR_RETURN(std::string bytes, linvideo::media::EncodeVideo(view, encode));
    LV_RETURN_IF_ERROR(linvideo::media::SaveBytes(out, bytes));
  }
  if (flags.Has("contact-sheet")) {
    LV_ASSIGN_OR_RETURN(std::string sheet, linvideo::media::ContactSheet(view));
    LV_RETURN_IF_ERROR(linvideo::media::SaveBytes(flags.Get("contact-sheet"), sheet));
  }
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::cout << "wrote " << out << ": " << view.frames << " frames " << view.width << "x"
            << view.height << " (load " << secs(start, loaded) << " s, generate "
            << secs(loaded, generated) << " s)\n";
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args) {
    if (a == "-o") a = "--output";
  }
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  absl::Status status = Run(args);
  if (!status.ok()) {
    std::cerr << "linvideo-generate: " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
