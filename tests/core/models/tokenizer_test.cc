#include "core/models/wan/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace linvideo::core::wan {
namespace {

const std::string kDir = std::string(LINVIDEO_SOURCE_DIR) + "/tests/data/tokenizer";

std::unique_ptr<T5Tokenizer> Load(const TokenizerOptions& o = {}) {
  auto t = T5Tokenizer::Create(kDir, o);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(PromptCleanTest, WhitespaceCollapsesAndStrips) {
  EXPECT_EQ(WhitespaceClean("  a\t\n b  \r\n c "), "a b c");
  EXPECT_EQ(WhitespaceClean("x\u00a0\u3000\u2003y"), "x y");  // NBSP, ideographic, em space
  EXPECT_EQ(WhitespaceClean(""), "");
  EXPECT_EQ(WhitespaceClean(" \t "), "");
  EXPECT_EQ(WhitespaceClean("caf\u00e9  \u4f60\u597d"), "caf\u00e9 \u4f60\u597d");
}

TEST(PromptCleanTest, HtmlUnescapeLikePython) {
  EXPECT_EQ(HtmlUnescape("a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&#39;"), "a & b <c> \"d\" 'e'");
  EXPECT_EQ(HtmlUnescape("&#x41;&#X42;&#67&#128;&#0;"), "ABC\u20ac\ufffd");
  EXPECT_EQ(HtmlUnescape("&#xD800;&#1114112;"), "\ufffd\ufffd");
  EXPECT_EQ(HtmlUnescape("&#1;x&#xFFFF;"), "x");  // invalid code points are dropped
  EXPECT_EQ(HtmlUnescape("&eacute;t&eacute; &copy 2024 &nbsp;"),
            "\u00e9t\u00e9 \u00a9 2024 \u00a0");
  EXPECT_EQ(HtmlUnescape("&ampfoo &notit;"), "&foo \u00acit;");  // longest legacy prefix
  EXPECT_EQ(HtmlUnescape("&unknown; & &# &;"), "&unknown; & &# &;");
  EXPECT_EQ(HtmlUnescape("&hellip;&mdash;&rsquo;"), "\u2026\u2014\u2019");
  EXPECT_EQ(HtmlUnescape("&amp;lt;"), "&lt;");
}

TEST(PromptCleanTest, WanWhitespaceClean) {
  // Twice unescaped, so double-escaped text comes out plain; NBSP collapses with the spaces.
  EXPECT_EQ(CleanPrompt("  A cat&amp;lt;3 &nbsp; dogs\n\n"), "A cat<3 dogs");
  // ftfy uncurls literal quotes; entities are unescaped after it and stay curly.
  EXPECT_EQ(CleanPrompt("\u201cHi\u201d \u2018there\u2019 &rsquo;"), "\"Hi\" 'there' \u2019");
  EXPECT_EQ(CleanPrompt(""), "");
}

TEST(T5TokenizerTest, LoadsFromFolderFileAndBytes) {
  auto t = Load();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->pad_id(), 0);
  EXPECT_EQ(t->eos_id(), 1);
  EXPECT_EQ(t->vocab_size(), 200);
  EXPECT_EQ(std::filesystem::path(t->model_path()).filename(), "spiece.model");

  auto f = T5Tokenizer::Create(kDir + "/spiece.model");
  ASSERT_TRUE(f.ok()) << f.status();
  std::ifstream in(kDir + "/spiece.model", std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  auto b = T5Tokenizer::CreateFromSerialized(bytes.str());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*(*b)->EncodeIds("a red ball"), *t->EncodeIds("a red ball"));
}

TEST(T5TokenizerTest, ClearErrors) {
  auto none = T5Tokenizer::Create(kDir + "/does-not-exist");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  auto empty_dir = T5Tokenizer::Create(std::string(LINVIDEO_SOURCE_DIR) + "/tests/core");
  ASSERT_FALSE(empty_dir.ok());
  EXPECT_EQ(empty_dir.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(empty_dir.status().message().find("spiece.model"), std::string::npos);
  auto not_model = T5Tokenizer::Create(kDir + "/corpus.txt");
  ASSERT_FALSE(not_model.ok());
  EXPECT_EQ(not_model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(T5Tokenizer::CreateFromSerialized("garbage").ok());
}

TEST(T5TokenizerTest, RoundTripAndEos) {
  auto t = Load();
  ASSERT_NE(t, nullptr);
  for (const std::string text :
       {"A red ball rolls across the wooden table.",
        "Two cats play in the garden, then the camera pans.", "Caf\u00e9 na\u00efve \u00fcber"}) {
    auto ids = t->EncodeIds(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_GE(ids->size(), 2u);
    EXPECT_EQ(ids->back(), t->eos_id());
    for (size_t i = 0; i + 1 < ids->size(); ++i) EXPECT_NE((*ids)[i], t->eos_id());
    auto back = t->Decode(*ids);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, text);
  }
  auto empty = t->EncodeIds("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, std::vector<int64_t>{t->eos_id()});  // HF: "" -> [</s>]
  EXPECT_FALSE(t->Decode({5, 100000}).ok());
}

TEST(T5TokenizerTest, CleansBeforeTokenizing) {
  auto t = Load();
  auto a = t->EncodeIds("  A red&nbsp;ball &amp;amp;\n the  table ");
  auto b = t->EncodeIds("A red ball & the table");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  TokenizerOptions raw;
  raw.clean = false;
  raw.add_eos = false;
  auto r = Load(raw);
  auto c = r->EncodeIds("A red &amp; ball");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(*r->Decode(*c), "A red &amp; ball");
  EXPECT_NE(c->back(), r->eos_id());
}

TEST(T5TokenizerTest, PadsAndTruncatesToTextLen) {
  auto t = Load();
  const std::string long_text = "A white horse gallops across an open field of tall grass.";
  auto full = *t->EncodeIds(long_text);  // includes </s>
  auto batch = t->Encode({"a dog", long_text, ""}, 16);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->ids.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(batch->mask.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(batch->ids.scalar_type(), torch::kLong);
  EXPECT_EQ(batch->mask.scalar_type(), torch::kLong);
  ASSERT_EQ(batch->seq_lens.size(), 3u);
  auto dog = *t->EncodeIds("a dog");
  EXPECT_EQ(batch->seq_lens[0], static_cast<int64_t>(dog.size()));
  EXPECT_EQ(batch->seq_lens[2], 1);
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t n = batch->seq_lens[b];
    EXPECT_EQ(batch->mask[b].sum().item<int64_t>(), n);
    EXPECT_EQ(batch->ids[b][n - 1].item<int64_t>(), t->eos_id());
    for (int64_t i = n; i < 16; ++i) {
      EXPECT_EQ(batch->ids[b][i].item<int64_t>(), t->pad_id());
      EXPECT_EQ(batch->mask[b][i].item<int64_t>(), 0);
    }
  }
  // Truncation keeps text_len - 1 pieces and ends with </s>.
  const int64_t len = 6;
  ASSERT_GT(static_cast<int64_t>(full.size()), len);
  auto cut = t->Encode({long_text}, len);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->seq_lens[0], len);
  for (int64_t i = 0; i + 1 < len; ++i) EXPECT_EQ(cut->ids[0][i].item<int64_t>(), full[i]);
  EXPECT_EQ(cut->ids[0][len - 1].item<int64_t>(), t->eos_id());
  EXPECT_EQ(cut->mask.sum().item<int64_t>(), len);

  EXPECT_FALSE(t->Encode({"x"}, 0).ok());
  auto none = t->Encode({}, 8);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->ids.sizes(), (std::vector<int64_t>{0, 8}));
}

}  // namespace
}  // namespace linvideo::core::wan
