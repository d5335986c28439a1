#pragma once
// The umT5 tokenizer Wan 2.1 uses, on libsentencepiece, with Wan's prompt cleaning
// (wan/modules/tokenizers.py, clean='whitespace') and the Hugging Face T5 conventions the official
// T5EncoderModel relies on: </s> appended (add_special_tokens=True), right padding with <pad> to
// text_len, truncation to text_len - 1 tokens + </s>, attention mask 1 for real tokens.
//
// Differences from the Python pipeline (documented, not bugs):
//  * ftfy.fix_text is not available: only its quote uncurling is reproduced. Mojibake repair and
//    terminal-escape/control-character removal are not done; NFC/NFKC, ligatures and full-width
//    forms are covered by sentencepiece's own nmt_nfkc normalisation in the umT5 model.
//  * html.unescape: numeric references exactly as Python; named ones for the Latin-1 set, the XML
//    ones and the common typographic ones (quotes, dashes, ellipsis, euro, trade, ...), not all
//    2,231 HTML5 names.
//  * HF's tokenizer treats "<extra_id_N>" and other added special tokens in the text as single
//    tokens; sentencepiece splits them like ordinary text.
//
// Thread safety: immutable after Create(); Encode()/Decode() may be called concurrently.

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace linvideo::core::wan {

// Python's html.unescape for numeric references (incl. the cp1252 remap of &#128;-&#159;, U+FFFD
// for invalid ones) and a fixed table of named entities (see above); unknown text is kept as is.
std::string HtmlUnescape(std::string_view text);
// Wan's whitespace_clean: runs of Unicode whitespace -> one space, then strip.
std::string WhitespaceClean(std::string_view text);
// Wan's clean='whitespace' pipeline: whitespace_clean(basic_clean(text)), with ftfy reduced to
// quote uncurling (U+02BC, U+2018-U+201B -> ', U+201C-U+201F -> ").
std::string CleanPrompt(std::string_view text);

struct TokenizerOptions {
  bool clean = true;    // apply CleanPrompt first (Wan: clean='whitespace')
  bool add_eos = true;  // append </s> (HF add_special_tokens=True)
};

struct TokenizedBatch {
  torch::Tensor ids;              // [B, text_len] int64, right-padded with pad_id
  torch::Tensor mask;             // [B, text_len] int64, 1 = token (incl. </s>), 0 = padding
  std::vector<int64_t> seq_lens;  // tokens per row (= mask row sums)
};

class T5Tokenizer {
 public:
  // `path`: a sentencepiece model file, or a folder containing spiece.model (HF T5 layout) or
  // tokenizer.model (also looked for under tokenizer/ and google/umt5-xxl/, Wan's layout).
  // NOT_FOUND names every place looked; INVALID_ARGUMENT if the file is not a sentencepiece model
  // or has no </s>.
  static absl::StatusOr<std::unique_ptr<T5Tokenizer>> Create(const std::string& path,
                                                             const TokenizerOptions& options = {});
  // From the bytes of a .model file.
  static absl::StatusOr<std::unique_ptr<T5Tokenizer>> CreateFromSerialized(
      std::string_view model_bytes, const TokenizerOptions& options = {});
  ~T5Tokenizer();

  // Tokenizes every text to exactly `text_len` ids (Wan: 512). INVALID_ARGUMENT if text_len < 1.
  absl::StatusOr<TokenizedBatch> Encode(const std::vector<std::string>& texts,
                                        int64_t text_len = 512) const;
  // Ids of one text, cleaned per options, with </s> when add_eos, no padding or truncation.
  absl::StatusOr<std::vector<int64_t>> EncodeIds(std::string_view text) const;
  // Text of `ids`, stopping at the first </s> and skipping <pad>.
  absl::StatusOr<std::string> Decode(const std::vector<int64_t>& ids) const;

  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t vocab_size() const;
  const std::string& model_path() const { return model_path_; }  // empty when from bytes

 private:
  T5Tokenizer() = default;
  absl::Status Init(const TokenizerOptions& options);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  TokenizerOptions options_;
  std::string model_path_;
  int64_t pad_id_ = 0;
  int64_t eos_id_ = 1;
};

}  // namespace linvideo::core::wan
