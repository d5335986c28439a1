// linvideo-model: create, inspect, convert and run Wan 2.1 model folders.

#include <iostream>
#include <string>
#include <vector>

#include "tools/model_commands.h"

namespace {

constexpr char kUsage[] =
    "usage: linvideo-model <command> [flags]\n"
    "  init --config NAME --seed S [--dtype fp32|bf16] [--tokenizer spiece.model] DIR\n"
    "        random-weights model folder (diffusers layout); NAME: tiny, wan2.1-t2v-1.3b,\n"
    "        wan2.1-t2v-14b; [--small-companions]: tiny text encoder (at the DiT's text_dim)\n"
    "        and VAE beside a full-size DiT, for CPU smoke runs\n"
    "  inspect DIR\n"
    "        config, parameter counts and dtypes, attention kind per layer\n"
    "  convert --model DIR --to diffusers|original --output DIR\n"
    "        rewrite every component's weights with the other key naming\n"
    "  convert-attention --model DIR --layers 2,3,5 [--kind linear|hybrid|softmax] --output DIR\n"
    "        turn chosen DiT self-attention layers into another kind (identity feature maps)\n"
    "  forward --model DIR --component dit|text-encoder|vae-decode|vae-encode\n"
    "          --inputs in.safetensors --output out.safetensors [--device cpu] [--dtype fp32]\n"
    "        run one component on tensors from a file (dit: x, t, context; text-encoder: ids,\n"
    "        mask; vae-decode: z; vae-encode: x) and write `out`\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  absl::Status status;
  if (command == "init") {
    status = linvideo::tools::RunInit(args);
  } else if (command == "inspect") {
    status = linvideo::tools::RunInspect(args);
  } else if (command == "convert") {
    status = linvideo::tools::RunConvert(args);
  } else if (command == "convert-attention") {
    status = linvideo::tools::RunConvertAttention(args);
  } else if (command == "forward") {
    status = linvideo::tools::RunForward(args);
  } else {
    std::cerr << "unknown command '" << command << "'\n" << kUsage;
    return 2;
  }
  if (!status.ok()) {
    std::cerr << "linvideo-model " << command << ": " << status.message() << "\n";
    return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}
