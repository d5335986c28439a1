#include "core/models/wan/tokenizer.h"

// sentencepiece 0.1.x declares its own `namespace absl { using std::string_view; }`, which clashes
// with abseil's absl::string_view in one translation unit. Renaming its namespace while parsing the
// header is safe: the alias names std::string_view, so signatures and mangled names are unchanged.
#define absl linvideo_sentencepiece_absl
#include <sentencepiece_processor.h>
#undef absl

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace linvideo::core::wan {
namespace {

// ---- UTF-8 helpers -------------------------------------------------------------------------

// Decodes the code point at text[pos]; *len gets its byte length. Invalid bytes decode as -1 with
// length 1 (they are copied through unchanged).
int32_t DecodeUtf8(std::string_view text, size_t pos, size_t* len) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  *len = 1;
  if (b0 < 0x80) return b0;
  int n = b0 >= 0xF0 && b0 < 0xF5 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC2 && b0 < 0xE0 ? 2 : 0;
  if (n == 0 || b0 >= 0xF5 || pos + n > text.size()) return -1;
  int32_t cp = b0 & (0x7F >> n);
  for (int i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(text[pos + i]);
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  *len = n;
  return cp;
}

void AppendUtf8(int32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Unicode White_Space (what the `regex` module's \s matches in Wan's whitespace_clean).
bool IsWhiteSpace(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}
// Python's str.isspace (used by str.strip): White_Space plus the separators U+001C-U+001F.
bool IsPySpace(int32_t cp) { return IsWhiteSpace(cp) || (cp >= 0x1C && cp <= 0x1F); }

std::string_view StripPySpace(std::string_view text) {
  size_t begin = 0, end = text.size();
  while (begin < end) {
    size_t len = 0;
    if (!IsPySpace(DecodeUtf8(text, begin, &len))) break;
    begin += len;
  }
  while (end > begin) {
    // Step back to the start of the last code point.
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    const int32_t cp = DecodeUtf8(text, start, &len);
    if (start + len != end || !IsPySpace(cp)) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

// ---- html.unescape -------------------------------------------------------------------------

// Python's html._invalid_charrefs for &#128;-&#159;: the windows-1252 characters (5 undefined
// positions map to themselves).
constexpr int32_t kCp1252[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                 0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

// Latin-1 named entities U+00A0..U+00FF in code point order; HTML5 also accepts all of them
// without the trailing ';' (legacy names).
constexpr const char* kLatin1Names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",
    "copy",   "ordf",   "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn",
    "sup2",   "sup3",   "acute",  "micro",  "para",   "middot", "cedil",  "sup1",   "ordm",
    "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave",
    "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde",
    "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",
    "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",
    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave",
    "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

struct Entities {
  std::map<std::string, int32_t, std::less<>> with_semicolon;  // "amp;" -> '&'
  std::map<std::string, int32_t, std::less<>> legacy;          // "amp" -> '&' (no ';' needed)
};

const Entities& GetEntities() {
  static const Entities* entities = [] {
    auto* e = new Entities;
    auto add = [e](const std::string& name, int32_t cp, bool legacy) {
      e->with_semicolon[name + ";"] = cp;
      if (legacy) e->legacy[name] = cp;
    };
    for (int i = 0; i < 96; ++i) add(kLatin1Names[i], 0xA0 + i, true);
    for (auto [name, cp] : {std::pair<const char*, int32_t>{"amp", '&'},
                            {"lt", '<'},
                            {"gt", '>'},
                            {"quot", '"'},
                            {"AMP", '&'},
                            {"LT", '<'},
                            {"GT", '>'},
                            {"QUOT", '"'},
                            {"COPY", 0xA9},
                            {"REG", 0xAE}}) {
      add(name, cp, true);
    }
    for (auto [name, cp] : {std::pair<const char*, int32_t>{"apos", '\''},
                            {"OElig", 0x152},
                            {"oelig", 0x153},
                            {"Scaron", 0x160},
                            {"scaron", 0x161},
                            {"Yuml", 0x178},
                            {"fnof", 0x192},
                            {"circ", 0x2C6},
                            {"tilde", 0x2DC},
                            {"ensp", 0x2002},
                            {"emsp", 0x2003},
                            {"thinsp", 0x2009},
                            {"zwnj", 0x200C},
                            {"zwj", 0x200D},
                            {"lrm", 0x200E},
                            {"rlm", 0x200F},
                            {"ndash", 0x2013},
                            {"mdash", 0x2014},
                            {"lsquo", 0x2018},
                            {"rsquo", 0x2019},
                            {"sbquo", 0x201A},
                            {"ldquo", 0x201C},
                            {"rdquo", 0x201D},
                            {"bdquo", 0x201E},
                            {"dagger", 0x2020},
                            {"Dagger", 0x2021},
                            {"bull", 0x2022},
                            {"hellip", 0x2026},
                            {"permil", 0x2030},
                            {"prime", 0x2032},
                            {"Prime", 0x2033},
                            {"lsaquo", 0x2039},
                            {"rsaquo", 0x203A},
                            {"euro", 0x20AC},
                            {"trade", 0x2122},
                            {"larr", 0x2190},
                            {"uarr", 0x2191},
                            {"rarr", 0x2192},
                            {"darr", 0x2193},
                            {"harr", 0x2194},
                            {"minus", 0x2212},
                            {"infin", 0x221E},
                            {"ne", 0x2260},
                            {"le", 0x2264},
                            {"ge", 0x2265},
                            {"hearts", 0x2665},
                            {"star", 0x2606},
                            {"half", 0xBD},
                            {"Tab", '\t'},
                            {"NewLine", '\n'}}) {
      add(name, cp, false);
    }
    return e;
  }();
  return *entities;
}

bool IsHexDigit(char c) { return absl::ascii_isxdigit(static_cast<unsigned char>(c)); }
bool IsDigit(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }

// Python html._replace_charref for a numeric reference: appends the replacement.
void AppendCharRef(int64_t num, std::string* out) {
  if (num >= 0x80 && num <= 0x9F) return AppendUtf8(kCp1252[num - 0x80], out);
  if (num == 0x00) return AppendUtf8(0xFFFD, out);
  if (num == 0x0D) return out->push_back('\r');
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return AppendUtf8(0xFFFD, out);
  // Python's _invalid_codepoints are dropped.
  if ((num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) ||
      (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) ||
      (num & 0xFFFE) == 0xFFFE) {
    return;
  }
  AppendUtf8(static_cast<int32_t>(num), out);
}

// Characters a named reference may contain (Python: [^\t\n\f <&#;]{1,32}).
bool IsNameChar(char c) {
  return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
         c != ';';
}

}  // namespace

std::string HtmlUnescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '&') {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < text.size() && text[j] == '#') {
      // Numeric: &#123;? or &#x7b;? (the ';' is optional, as in Python).
      const bool hex = j + 1 < text.size() && (text[j + 1] == 'x' || text[j + 1] == 'X');
      size_t k = j + (hex ? 2 : 1);
      const size_t digits_begin = k;
      while (k < text.size() && (hex ? IsHexDigit(text[k]) : IsDigit(text[k]))) ++k;
      if (k == digits_begin) {
        out.push_back(text[i++]);  // "&#" without digits stays
        continue;
      }
      int64_t num = 0;
      for (size_t d = digits_begin; d < k; ++d) {
        const int v = IsDigit(text[d]) ? text[d] - '0' : absl::ascii_tolower(text[d]) - 'a' + 10;
        num = std::min<int64_t>(num * (hex ? 16 : 10) + v, 0x7FFFFFFF);  // saturate: > 0x10FFFF
      }
      if (k < text.size() && text[k] == ';') ++k;
      AppendCharRef(num, &out);
      i = k;
      continue;
    }
    // Named: up to 32 name characters and an optional ';'.
    size_t k = j;
    while (k < text.size() && k - j < 32 && IsNameChar(text[k])) ++k;
    if (k == j) {
      out.push_back(text[i++]);
      continue;
    }
    if (k < text.size() && text[k] == ';') ++k;
    const std::string_view name = text.substr(j, k - j);
    const Entities& entities = GetEntities();
    if (auto it = entities.with_semicolon.find(name); it != entities.with_semicolon.end()) {
      AppendUtf8(it->second, &out);
      i = k;
      continue;
    }
    if (auto it = entities.legacy.find(name); it != entities.legacy.end()) {
      AppendUtf8(it->second, &out);
      i = k;
      continue;
    }
    // Longest legacy prefix (Python tries lengths len-1 down to 2), the rest is kept.
    bool found = false;
    for (size_t n = name.size() - 1; n >= 2 && !found; --n) {
      if (auto it = entities.legacy.find(name.substr(0, n)); it != entities.legacy.end()) {
        AppendUtf8(it->second, &out);
        out.append(name.substr(n));
        found = true;
      }
    }
    if (!found) {
      out.push_back('&');
      out.append(name);
    }
    i = k;
  }
  return out;
}

std::string WhitespaceClean(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_space = false;
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const int32_t cp = DecodeUtf8(text, i, &len);
    if (IsWhiteSpace(cp)) {
      if (!in_space) out.push_back(' ');
      in_space = true;
    } else {
      out.append(text.substr(i, len));
      in_space = false;
    }
    i += len;
  }
  return std::string(StripPySpace(out));
}

std::string CleanPrompt(std::string_view text) {
  // ftfy.fix_text's uncurl_quotes (the part of ftfy that changes ordinary prompts).
  std::string uncurled;
  uncurled.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const int32_t cp = DecodeUtf8(text, i, &len);
    if (cp == 0x2BC || (cp >= 0x2018 && cp <= 0x201B)) {
      uncurled.push_back('\'');
    } else if (cp >= 0x201C && cp <= 0x201F) {
      uncurled.push_back('"');
    } else {
      uncurled.append(text.substr(i, len));
    }
    i += len;
  }
  // basic_clean: html.unescape twice, strip; then whitespace_clean.
  const std::string unescaped = HtmlUnescape(HtmlUnescape(uncurled));
  return WhitespaceClean(StripPySpace(unescaped));
}

// ---- libsentencepiece, loaded in isolation --------------------------------------------------
//
// Debian's libsentencepiece.so.0 carries its own copy of protobuf-lite 3.14 with exported symbols.
// Linked normally it lands in the global symbol scope ahead of LibTorch's libprotobuf 3.21, whose
// static initialisers then run sentencepiece's copies and crash before main(); linking libprotobuf
// first instead makes sentencepiece's generated code abort on the version check. So the library is
// dlopen'ed RTLD_LOCAL | RTLD_DEEPBIND: it binds to its own protobuf, LibTorch keeps the system
// one. The processor's methods are virtual (called through its vtable, no link-time symbol); the
// three non-virtual symbols the header makes us reference are the constructor (looked up with
// dlsym) and util::Status' destructor and ToString(), defined below from the Status layout of
// sentencepiece's util.cc (stable across 0.1.x and 0.2.x).

namespace {

struct SpmLibrary {
  void* handle = nullptr;
  void (*construct)(void* self) = nullptr;  // SentencePieceProcessor::SentencePieceProcessor()
  std::string error;
};

const SpmLibrary& GetSpmLibrary() {
  static const SpmLibrary* library = [] {
    auto* lib = new SpmLibrary;
    for (const char* name : {"libsentencepiece.so.0", "libsentencepiece.so"}) {
      lib->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (lib->handle != nullptr) break;
      const char* err = dlerror();
      absl::StrAppend(&lib->error, err != nullptr ? err : name, "; ");
    }
    if (lib->handle == nullptr) {
      lib->error =
          absl::StrCat("cannot load libsentencepiece (", lib->error,
                       ") - install the sentencepiece runtime (Debian: libsentencepiece0)");
      return lib;
    }
    lib->construct = reinterpret_cast<void (*)(void*)>(
        dlsym(lib->handle, "_ZN13sentencepiece22SentencePieceProcessorC1Ev"));
    if (lib->construct == nullptr) {
      lib->error = "libsentencepiece has no SentencePieceProcessor constructor symbol";
    }
    return lib;
  }();
  return *library;
}

// A processor constructed by the library in storage from operator new; `delete` on it runs the
// library's virtual deleting destructor.
absl::StatusOr<std::unique_ptr<sentencepiece::SentencePieceProcessor>> NewProcessor() {
  const SpmLibrary& lib = GetSpmLibrary();
  if (lib.construct == nullptr) return absl::FailedPreconditionError(lib.error);
  void* storage = ::operator new(sizeof(sentencepiece::SentencePieceProcessor));
  lib.construct(storage);
  return std::unique_ptr<sentencepiece::SentencePieceProcessor>(
      static_cast<sentencepiece::SentencePieceProcessor*>(storage));
}

}  // namespace

// ---- T5Tokenizer ------------------------------------------------------------------------------

T5Tokenizer::~T5Tokenizer() = default;

absl::StatusOr<std::unique_ptr<T5Tokenizer>> T5Tokenizer::Create(const std::string& path,
                                                                 const TokenizerOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    const std::vector<std::string> candidates = {"spiece.model",
                                                 "tokenizer.model",
                                                 "tokenizer/spiece.model",
                                                 "tokenizer/tokenizer.model",
                                                 "google/umt5-xxl/spiece.model",
                                                 "google/umt5-xxl/tokenizer.model"};
    file.clear();
    for (const auto& c : candidates) {
      if (fs::is_regular_file(fs::path(path) / c, ec)) {
        file = (fs::path(path) / c).string();
        break;
      }
    }
    if (file.empty()) {
      return absl::NotFoundError(absl::StrCat("no sentencepiece tokenizer model in folder ", path,
                                              "; looked for ", absl::StrJoin(candidates, ", ")));
    }
  } else if (!fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "tokenizer model ", path,
        " does not exist; pass a sentencepiece .model file or a folder with spiece.model or "
        "tokenizer.model"));
  }
  std::unique_ptr<T5Tokenizer> tok(new T5Tokenizer);
  auto sp = NewProcessor();
  if (!sp.ok()) return sp.status();
  tok->sp_ = std::move(*sp);
  if (auto s = tok->sp_->Load(file); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load sentencepiece model ", file, ": ", s.ToString()));
  }
  tok->model_path_ = file;
  if (absl::Status s = tok->Init(options); !s.ok()) return s;
  return tok;
}

absl::StatusOr<std::unique_ptr<T5Tokenizer>> T5Tokenizer::CreateFromSerialized(
    std::string_view model_bytes, const TokenizerOptions& options) {
  std::unique_ptr<T5Tokenizer> tok(new T5Tokenizer);
  auto sp = NewProcessor();
  if (!sp.ok()) return sp.status();
  tok->sp_ = std::move(*sp);
  if (auto s = tok->sp_->LoadFromSerializedProto(model_bytes); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a sentencepiece model (", model_bytes.size(), " bytes): ", s.ToString()));
  }
  if (absl::Status s = tok->Init(options); !s.ok()) return s;
  return tok;
}

absl::Status T5Tokenizer::Init(const TokenizerOptions& options) {
  options_ = options;
  if (sp_->eos_id() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("sentencepiece model ", model_path_,
                                                   " has no </s> piece; a T5 tokenizer needs one"));
  }
  eos_id_ = sp_->eos_id();
  // T5 models use <pad> = 0; HF's T5Tokenizer also pads with id 0 when the model defines no pad.
  pad_id_ = sp_->pad_id() >= 0 ? sp_->pad_id() : 0;
  return absl::OkStatus();
}

int64_t T5Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

absl::StatusOr<std::vector<int64_t>> T5Tokenizer::EncodeIds(std::string_view text) const {
  const std::string cleaned = options_.clean ? CleanPrompt(text) : std::string(text);
  std::vector<int> pieces;
  if (auto s = sp_->Encode(cleaned, &pieces); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sentencepiece encode failed: ", s.ToString()));
  }
  std::vector<int64_t> ids(pieces.begin(), pieces.end());
  if (options_.add_eos) ids.push_back(eos_id_);
  return ids;
}

absl::StatusOr<TokenizedBatch> T5Tokenizer::Encode(const std::vector<std::string>& texts,
                                                   int64_t text_len) const {
  if (text_len < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: text_len must be >= 1, got ", text_len));
  }
  const int64_t batch = static_cast<int64_t>(texts.size());
  TokenizedBatch out;
  out.ids = torch::full({batch, text_len}, pad_id_, torch::kLong);  // [B, text_len]
  out.mask = torch::zeros({batch, text_len}, torch::kLong);         // [B, text_len]
  auto ids = out.ids.accessor<int64_t, 2>();
  auto mask = out.mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < batch; ++b) {
    absl::StatusOr<std::vector<int64_t>> row = EncodeIds(texts[b]);
    if (!row.ok()) return row.status();
    // HF truncation keeps room for the special token: text_len - 1 pieces, then </s>.
    if (static_cast<int64_t>(row->size()) > text_len) {
      row->resize(text_len);
      if (options_.add_eos) row->back() = eos_id_;
    }
    for (size_t i = 0; i < row->size(); ++i) {
      ids[b][i] = (*row)[i];
      mask[b][i] = 1;
    }
    out.seq_lens.push_back(static_cast<int64_t>(row->size()));
  }
  return out;
}

absl::StatusOr<std::string> T5Tokenizer::Decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  for (int64_t id : ids) {
    if (id == eos_id_) break;
    if (id == pad_id_) continue;
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer decode: id ", id, " outside [0, ", vocab_size(), ")"));
    }
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  if (auto s = sp_->Decode(pieces, &text); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sentencepiece decode failed: ", s.ToString()));
  }
  return text;
}

}  // namespace linvideo::core::wan

// The non-virtual util::Status members the sentencepiece header makes callers reference (see the
// loader comment above). Layout as in sentencepiece's util.cc.
namespace sentencepiece::util {
struct Status::Rep {
  StatusCode code;
  std::string error_message;
};
Status::~Status() = default;
std::string Status::ToString() const {
  if (rep_ == nullptr) return "OK";
  return "sentencepiece error " + std::to_string(static_cast<int>(rep_->code)) + ": " +
         rep_->error_message;
}
}  // namespace sentencepiece::util
