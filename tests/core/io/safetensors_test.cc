#include "core/io/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include "tests/core/io/io_test_util.h"

namespace linvideo::core::io {
namespace {

using testing::Craft;
using testing::ReadBytes;
using testing::TempDir;
using testing::WriteBytes;

TensorMap EveryDtype() {
  torch::manual_seed(0);
  TensorMap m;
  m["f32"] = torch::randn({3, 4});
  m["bf16"] = torch::randn({2, 5}).to(torch::kBFloat16);
  m["f16"] = torch::randn({7}).to(torch::kFloat16);
  m["f64"] = torch::randn({2, 2, 2}, torch::kFloat64);
  m["i64"] = torch::randint(-1000000, 1000000, {5}, torch::kInt64);
  m["i32"] = torch::randint(-100000, 100000, {3, 1}, torch::kInt32);
  m["i16"] = torch::randint(-30000, 30000, {4}, torch::kInt16);
  m["i8"] = torch::randint(-128, 127, {9}, torch::kInt8);
  m["u8"] = torch::randint(0, 255, {2, 3}, torch::kUInt8);
  m["bool"] = torch::randint(0, 2, {11}).to(torch::kBool);
  m["scalar"] = torch::tensor(3.5f).reshape({});
  m["empty"] = torch::zeros({0, 3});
  return m;
}

// The path of the file mapped at `addr` in this process ("" or e.g. "[heap]" if not file-backed).
std::string MappedFile(const void* addr) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(addr);
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode >> path;
    const size_t dash = range.find('-');
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (a >= lo && a < hi) return path;
  }
  return "";
}

TEST(SafetensorsTest, RoundTripsEveryDtypeAndMetadata) {
  TempDir dir;
  const std::string path = dir.File("all.safetensors");
  TensorMap in = EveryDtype();
  ASSERT_TRUE(WriteSafetensors(path, in, {{"format", "pt"}, {"note", "é"}}).ok());
  auto reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->metadata().at("format"), "pt");
  EXPECT_EQ((*reader)->metadata().at("note"), "é");
  auto out = (*reader)->ReadAll();
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), in.size());
  for (const auto& [name, t] : in) {
    const torch::Tensor& r = out->at(name);
    EXPECT_EQ(r.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(r.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(r, t)) << name;
  }
  // tensors() is in data order.
  const auto& infos = (*reader)->tensors();
  for (size_t i = 1; i < infos.size(); ++i) EXPECT_LE(infos[i - 1].end, infos[i].begin);
  EXPECT_TRUE((*reader)->Contains("bf16"));
  EXPECT_FALSE((*reader)->Contains("nope"));
}

TEST(SafetensorsTest, HeaderIsSpacePaddedToEightBytes) {
  TempDir dir;
  const std::string path = dir.File("a.safetensors");
  for (int n = 1; n < 9; ++n) {
    TensorMap m;
    m[std::string(n, 'x')] = torch::ones({n});
    ASSERT_TRUE(WriteSafetensors(path, m).ok());
    const std::string bytes = ReadBytes(path);
    uint64_t len = 0;
    for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<uint8_t>(bytes[i]);
    EXPECT_EQ((8 + len) % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + len + 4 * n);
    EXPECT_EQ(bytes[8], '{');
    const std::string header = bytes.substr(8, len);
    const size_t close = header.find_last_of('}');
    EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos);
  }
}

TEST(SafetensorsTest, ConvertsFloatingTypesOnRequest) {
  TempDir dir;
  const std::string path = dir.File("a.safetensors");
  TensorMap in = EveryDtype();
  ASSERT_TRUE(WriteSafetensors(path, in).ok());
  auto reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok());
  for (const char* name : {"bf16", "f16", "f64", "f32"}) {
    auto t = (*reader)->Get(name, torch::kFloat32);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(*t, in[name].to(torch::kFloat32))) << name;
  }
  auto bf = (*reader)->Get("f32", torch::kBFloat16);
  ASSERT_TRUE(bf.ok());
  EXPECT_TRUE(torch::equal(*bf, in["f32"].to(torch::kBFloat16)));
  // Integer tensors keep their dtype; a non-floating request is rejected.
  auto ints = (*reader)->Get("i32", torch::kFloat32);
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ(ints->scalar_type(), torch::kInt32);
  auto all = ReadSafetensors(path, torch::kFloat32);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->at("bf16").scalar_type(), torch::kFloat32);
  EXPECT_EQ(all->at("u8").scalar_type(), torch::kUInt8);
  auto bad = (*reader)->Get("f32", torch::kInt64);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, ViewsAreZeroCopyAndKeepTheMappingAlive) {
  TempDir dir;
  const std::string path = dir.File("z.safetensors");
  TensorMap in = EveryDtype();
  ASSERT_TRUE(WriteSafetensors(path, in).ok());
  auto reader = SafetensorsReader::Open(path);
  ASSERT_TRUE(reader.ok());
  auto a = (*reader)->Get("f32");
  auto b = (*reader)->Get("i64");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(MappedFile(a->data_ptr()), path);
  EXPECT_EQ(MappedFile(b->data_ptr()), path);
  auto infos = (*reader)->tensors();
  uint64_t begin_a = 0, begin_b = 0;
  for (const auto& i : infos) {
    if (i.name == "f32") begin_a = i.begin;
    if (i.name == "i64") begin_b = i.begin;
  }
  EXPECT_EQ(static_cast<char*>(b->data_ptr()) - static_cast<char*>(a->data_ptr()),
            static_cast<int64_t>(begin_b) - static_cast<int64_t>(begin_a));
  // Same dtype requested: still a view. A conversion: a copy, not in the file.
  auto same = (*reader)->Get("f32", torch::kFloat32);
  EXPECT_EQ(same->data_ptr(), a->data_ptr());
  auto conv = (*reader)->Get("bf16", torch::kFloat32);
  EXPECT_NE(MappedFile(conv->data_ptr()), path);
  // The writer aligns every tensor, so every non-empty one is a view into the file.
  for (const auto& info : infos) {
    if (info.begin == info.end) continue;
    auto t = (*reader)->Get(info.name);
    EXPECT_EQ(MappedFile(t->data_ptr()), path) << info.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data_ptr()) % t->element_size(), 0u);
  }
  reader->reset();  // the views hold the mapping
  EXPECT_EQ(MappedFile(a->data_ptr()), path);
  EXPECT_TRUE(torch::equal(*a, in["f32"]));
  a = torch::Tensor();
  b = torch::Tensor();
  same = torch::Tensor();
  EXPECT_NE(MappedFile(conv->data_ptr()), path);
}

TEST(SafetensorsTest, UnalignedDataIsCopied) {
  // A 2-byte U8 tensor first puts the F32 tensor at data offset 2.
  std::string header = R"({"pad":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("x":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string file = testing::LengthPrefix(header.size()) + header;
  const float values[2] = {1.5f, -2.25f};
  file += std::string("\x07\x09", 2);
  file += std::string(reinterpret_cast<const char*>(values), sizeof(values));
  TempDir dir;
  WriteBytes(dir.File("u.safetensors"), file);
  auto reader = SafetensorsReader::Open(dir.File("u.safetensors"));
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto x = (*reader)->Get("x");
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x->data_ptr()) % 4, 0u);
  EXPECT_NE(MappedFile(x->data_ptr()), dir.File("u.safetensors"));
  EXPECT_TRUE(torch::equal(*x, torch::tensor({1.5f, -2.25f})));
  auto pad = (*reader)->Get("pad");
  EXPECT_EQ(pad->data_ptr<uint8_t>()[1], 9);
  auto x16 = (*reader)->Get("x", torch::kFloat16);
  EXPECT_TRUE(torch::equal(*x16, torch::tensor({1.5f, -2.25f}).to(torch::kFloat16)));
}

TEST(SafetensorsTest, EmptyFileAndNonContiguousInput) {
  TempDir dir;
  ASSERT_TRUE(WriteSafetensors(dir.File("e.safetensors"), {}).ok());
  auto e = ReadSafetensors(dir.File("e.safetensors"));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->empty());
  TensorMap m;
  torch::Tensor base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  m["t"] = base.t();                                   // transposed view
  m["s"] = base.index({torch::indexing::Slice(), 1});  // strided slice
  ASSERT_TRUE(WriteSafetensors(dir.File("n.safetensors"), m).ok());
  auto r = ReadSafetensors(dir.File("n.safetensors"));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(torch::equal(r->at("t"), base.t()));
  EXPECT_TRUE(torch::equal(r->at("s"), torch::tensor({1.f, 5.f, 9.f})));
}

TEST(SafetensorsTest, WriterRejectsWhatItCannotStore) {
  TempDir dir;
  const std::string path = dir.File("w.safetensors");
  auto code = [&](TensorMap m, const std::string& needle) {
    absl::Status s = WriteSafetensors(path, m);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s;
  };
  code({{"c", torch::zeros({2}, torch::kComplexFloat)}}, "supported: F32");
  code({{"u", torch::Tensor()}}, "undefined");
  code({{"", torch::zeros({2})}}, "empty");
  code({{"__metadata__", torch::zeros({2})}}, "reserved");
  code({{"sp", torch::zeros({2, 2}).to_sparse()}}, "dense");
  EXPECT_TRUE(dir.List().empty());  // no file, no temp file
}

TEST(SafetensorsTest, GetUnknownNameListsSome) {
  TempDir dir;
  ASSERT_TRUE(WriteSafetensors(dir.File("a.safetensors"), EveryDtype()).ok());
  auto reader = SafetensorsReader::Open(dir.File("a.safetensors"));
  auto t = (*reader)->Get("missing");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(t.status().message().find("bf16"), std::string::npos) << t.status();
  EXPECT_EQ(SafetensorsReader::Open(dir.File("none.safetensors")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsReader::Open(dir.path()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, BoolBytesOtherThanZeroOrOneAreDataLoss) {
  TempDir dir;
  std::string header = R"({"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})";
  WriteBytes(dir.File("b.safetensors"),
             testing::LengthPrefix(header.size()) + header + std::string("\x01\x00\x02", 3));
  auto reader = SafetensorsReader::Open(dir.File("b.safetensors"));
  ASSERT_TRUE(reader.ok());
  auto b = (*reader)->Get("b");
  EXPECT_EQ(b.status().code(), absl::StatusCode::kDataLoss) << b.status();
}

TEST(SafetensorsTest, TruncatedFileIsDataLoss) {
  TempDir dir;
  const std::string path = dir.File("t.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, EveryDtype()).ok());
  const std::string bytes = ReadBytes(path);
  for (size_t keep : {bytes.size() - 1, bytes.size() - 40, size_t{20}, size_t{7}, size_t{0}}) {
    WriteBytes(path, bytes.substr(0, keep));
    auto r = SafetensorsReader::Open(path);
    ASSERT_FALSE(r.ok()) << keep;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << keep << " " << r.status();
  }
}

}  // namespace
}  // namespace linvideo::core::io
