// The tokenizer's cleaning and encoding (core/models/wan/tokenizer.h) on arbitrary bytes (prompts
// are untrusted UTF-8 or not), with the shipped default model's sentencepiece model. Invariants:
// cleaning is idempotent on its own output's whitespace, Encode gives exactly text_len ids with a
// mask that matches the row's length, and every id decodes.
#include <torch/types.h>

#include "core/models/wan/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using linvideo::fuzz::Check;
  namespace wan = linvideo::core::wan;
  static const std::unique_ptr<wan::T5Tokenizer> tokenizer = [] {
    auto t = wan::T5Tokenizer::Create(linvideo::fuzz::SourceFile("models/default/tokenizer"));
    Check(t.ok(), "cannot load models/default/tokenizer");
    return std::move(*t);
  }();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string clean = wan::CleanPrompt(text);
  Check(wan::WhitespaceClean(clean) == clean, "CleanPrompt output is not whitespace-clean");
  auto ids = tokenizer->EncodeIds(text);
  if (!ids.ok()) return 0;
  Check(!ids->empty() && ids->back() == tokenizer->eos_id(), "ids do not end with </s>");
  for (int64_t id : *ids) Check(id >= 0 && id < tokenizer->vocab_size(), "id outside the vocab");
  (void)tokenizer->Decode(*ids);
  constexpr int64_t kLen = 16;
  auto batch = tokenizer->Encode({std::string(text)}, kLen);
  Check(batch.ok(), "EncodeIds accepted a text that Encode refuses");
  Check(batch->ids.sizes() == torch::IntArrayRef({1, kLen}), "Encode shape is not [1, text_len]");
  Check(batch->mask.sum().item<int64_t>() == batch->seq_lens[0], "mask and seq_lens disagree");
  Check(batch->seq_lens[0] == std::min<int64_t>(kLen, static_cast<int64_t>(ids->size())),
        "seq_len is not min(text_len, ids)");
  return 0;
}
