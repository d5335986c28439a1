// safetensors reader: mmap + header validation + zero-copy views.
#include "core/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status.h"
#include "core/io/json_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; zero-copy views assume a little-endian host");

namespace linvideo::core::io {
namespace {

using nlohmann::json;

struct DtypeName {
  const char* name;
  torch::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F32", torch::kFloat32}, {"BF16", torch::kBFloat16}, {"F16", torch::kFloat16},
    {"F64", torch::kFloat64}, {"I64", torch::kInt64},     {"I32", torch::kInt32},
    {"I16", torch::kInt16},   {"I8", torch::kInt8},       {"U8", torch::kUInt8},
    {"BOOL", torch::kBool},
};

std::string SupportedDtypes() {
  std::vector<std::string> names;
  for (const auto& d : kDtypes) names.push_back(d.name);
  return absl::StrJoin(names, ", ");
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// A JSON number that is a non-negative integer fitting `max` (floats like 1.0 are rejected).
bool AsUint(const json& v, uint64_t max, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
  } else {
    return false;
  }
  return *out <= max;
}

}  // namespace

absl::StatusOr<torch::ScalarType> DtypeFromSafetensorsName(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.dtype;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype \"", name, "\"; supported: ", SupportedDtypes()));
}

absl::StatusOr<std::string> SafetensorsDtypeName(torch::ScalarType dtype) {
  for (const auto& d : kDtypes) {
    if (dtype == d.dtype) return std::string(d.name);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "dtype ", c10::toString(dtype), " cannot be stored; supported: ", SupportedDtypes()));
}

struct SafetensorsReader::Mapping {
  ~Mapping() {
    if (base != nullptr) ::munmap(base, size);
  }
  void* base = nullptr;
  size_t size = 0;
  uint64_t data_start = 0;  // 8 + header length
  const uint8_t* data() const { return static_cast<const uint8_t*>(base) + data_start; }
};

SafetensorsReader::~SafetensorsReader() = default;

namespace {

// Validates one header entry; `data_size` is the byte length of the data section.
absl::Status ParseEntry(const std::string& name, const json& entry, uint64_t data_size,
                        TensorInfo* info) {
  auto bad = [&name](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\": ", what));
  };
  if (name.empty()) return bad("empty tensor names are not allowed");
  if (!entry.is_object()) {
    return bad(absl::StrCat("entry must be an object {dtype, shape, data_offsets}, got ",
                            entry.type_name()));
  }
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return bad(
          absl::StrCat("unknown field \"", key, "\"; allowed fields: dtype, shape, data_offsets"));
    }
  }
  auto dtype_it = entry.find("dtype");
  auto shape_it = entry.find("shape");
  auto offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end()) return bad("missing \"dtype\"");
  if (shape_it == entry.end()) return bad("missing \"shape\"");
  if (offsets_it == entry.end()) return bad("missing \"data_offsets\"");
  if (!dtype_it->is_string()) {
    return bad(absl::StrCat("\"dtype\" must be a string, got ", dtype_it->type_name()));
  }
  absl::StatusOr<torch::ScalarType> dtype = DtypeFromSafetensorsName(dtype_it->get<std::string>());
  if (!dtype.ok()) return bad(std::string(dtype.status().message()));

  if (!shape_it->is_array()) {
    return bad(absl::StrCat("\"shape\" must be an array of integers, got ", shape_it->type_name()));
  }
  if (shape_it->size() > kMaxTensorRank) {
    return bad(absl::StrCat("rank ", shape_it->size(), " exceeds the maximum of ", kMaxTensorRank));
  }
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  for (const json& d : *shape_it) {
    uint64_t dim;
    if (!AsUint(d, static_cast<uint64_t>(INT64_MAX), &dim)) {
      return bad(
          absl::StrCat("shape ", shape_it->dump(), " must hold non-negative integers below 2^63"));
    }
    shape.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(numel, dim, &numel) || numel > static_cast<uint64_t>(INT64_MAX)) {
      return bad(absl::StrCat("shape ", shape_it->dump(), " has more than 2^63 elements"));
    }
  }
  const uint64_t elem = c10::elementSize(*dtype);
  uint64_t nbytes;
  if (__builtin_mul_overflow(numel, elem, &nbytes)) {
    return bad(absl::StrCat("shape ", shape_it->dump(), " overflows the byte size"));
  }

  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return bad(absl::StrCat("\"data_offsets\" must be [begin, end], got ", offsets_it->dump()));
  }
  uint64_t begin, end;
  if (!AsUint((*offsets_it)[0], UINT64_MAX, &begin) ||
      !AsUint((*offsets_it)[1], UINT64_MAX, &end)) {
    return bad(
        absl::StrCat("\"data_offsets\" ", offsets_it->dump(), " must be non-negative integers"));
  }
  if (begin > end) {
    return bad(absl::StrCat("data_offsets [", begin, ", ", end, "] have begin > end"));
  }
  if (end > data_size) {
    return absl::DataLossError(absl::StrCat("tensor \"", name, "\": data_offsets [", begin, ", ",
                                            end, "] extend past the data section (", data_size,
                                            " bytes); the file is truncated or corrupt"));
  }
  if (end - begin != nbytes) {
    return bad(absl::StrCat("data_offsets [", begin, ", ", end, "] span ", end - begin,
                            " bytes but ", dtype_it->get<std::string>(), " ", ShapeString(shape),
                            " needs ", nbytes));
  }
  info->name = name;
  info->dtype = *dtype;
  info->shape = std::move(shape);
  info->begin = begin;
  info->end = end;
  return absl::OkStatus();
}

absl::Status ParseHeader(std::string_view text, uint64_t data_size,
                         std::vector<TensorInfo>* tensors, Metadata* metadata) {
  LV_ASSIGN_OR_RETURN(json header, ParseJson(text, "header"));
  if (!header.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("header must be a JSON object {name: {dtype, shape, data_offsets}}, got ",
                     header.type_name()));
  }
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"__metadata__\" must be an object of string values, got ", entry.type_name()));
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "\"__metadata__\" value of \"", key, "\" must be a string, got ", value.type_name()));
        }
        (*metadata)[key] = value.get<std::string>();
      }
      continue;
    }
    TensorInfo info;
    LV_RETURN_IF_ERROR(ParseEntry(name, entry, data_size, &info));
    tensors->push_back(std::move(info));
  }
  // File order; then no two non-empty byte ranges may overlap (empty tensors occupy no bytes).
  std::sort(tensors->begin(), tensors->end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : *tensors) {
    if (t.begin == t.end) continue;
    if (prev != nullptr && t.begin < prev->end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensors \"", prev->name, "\" [", prev->begin, ", ", prev->end, ") and \"", t.name,
          "\" [", t.begin, ", ", t.end, ") overlap; every tensor needs its own bytes"));
    }
    prev = &t;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::Open(
    const std::string& path) {
  // O_NONBLOCK so that a FIFO at `path` cannot hang us; it has no effect on regular files.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    std::string msg = absl::StrCat("cannot open ", path, ": ", std::strerror(err));
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(msg);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
    return absl::InvalidArgumentError(msg);
  }
  struct stat sb;
  if (::fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  const uint64_t file_size = static_cast<uint64_t>(sb.st_size);
  if (file_size < 8) {
    ::close(fd);
    return absl::DataLossError(absl::StrCat(path, ": ", file_size,
                                            " bytes is too short for a safetensors file (an "
                                            "8-byte header length comes first)"));
  }
  auto mapping = std::make_shared<Mapping>();
  void* base = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (base == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mmap ", path, ": ", std::strerror(err)));
  }
  mapping->base = base;
  mapping->size = file_size;

  const auto* bytes = static_cast<const uint8_t*>(base);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header length ", header_len,
                                                   " exceeds the maximum of ", kMaxHeaderBytes,
                                                   " bytes"));
  }
  if (header_len > file_size - 8) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len, " exceeds the ",
                                            file_size - 8,
                                            " bytes that follow it; the file is truncated"));
  }
  mapping->data_start = 8 + header_len;

  std::unique_ptr<SafetensorsReader> reader(new SafetensorsReader());
  reader->path_ = path;
  std::string_view text(reinterpret_cast<const char*>(bytes + 8), header_len);
  absl::Status st =
      ParseHeader(text, file_size - mapping->data_start, &reader->tensors_, &reader->metadata_);
  if (!st.ok()) return Annotate(st, path);
  for (size_t i = 0; i < reader->tensors_.size(); ++i) {
    reader->index_[reader->tensors_[i].name] = i;
  }
  reader->mapping_ = std::move(mapping);
  return reader;
}

bool SafetensorsReader::Contains(const std::string& name) const { return index_.count(name) > 0; }

absl::StatusOr<torch::Tensor> SafetensorsReader::Get(const std::string& name,
                                                     std::optional<torch::ScalarType> dtype) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    std::vector<std::string> some;
    for (const auto& [n, i] : index_) {
      if (some.size() == 5) break;
      some.push_back(n);
    }
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor \"", name, "\" among its ",
                                            index_.size(), " tensors (e.g. ",
                                            absl::StrJoin(some, ", "), ")"));
  }
  if (dtype.has_value() && !c10::isFloatingType(*dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("requested dtype ", c10::toString(*dtype),
                                                   " is not a floating type; allowed: Float, "
                                                   "BFloat16, Half, Double"));
  }
  const TensorInfo& info = tensors_[it->second];
  const uint8_t* ptr = mapping_->data() + info.begin;
  const size_t nbytes = info.end - info.begin;
  if (info.dtype == torch::kBool) {
    // Torch assumes bool bytes are 0/1; anything else is undefined behaviour in kernels.
    for (size_t i = 0; i < nbytes; ++i) {
      if (ptr[i] > 1) {
        return absl::DataLossError(absl::StrCat(path_, ": tensor \"", name, "\": BOOL byte ", i,
                                                " is ", int{ptr[i]}, "; only 0 and 1 are allowed"));
      }
    }
  }
  return TorchCall(absl::StrCat("reading ", name), [&]() -> torch::Tensor {
    auto options = torch::TensorOptions().dtype(info.dtype).device(torch::kCPU);
    torch::Tensor t;
    const size_t elem = c10::elementSize(info.dtype);
    if (nbytes == 0) {
      t = torch::empty(info.shape, options);
    } else if (reinterpret_cast<uintptr_t>(ptr) % elem == 0) {
      std::shared_ptr<Mapping> keep = mapping_;
      // from_blob wants void*; the memory stays read-only (see the header).
      t = torch::from_blob(
          const_cast<uint8_t*>(ptr), info.shape, [keep](void*) {}, options);
    } else {
      // Misaligned element access is undefined behaviour for typed kernels: copy.
      t = torch::empty(info.shape, options);
      std::memcpy(t.data_ptr(), ptr, nbytes);
    }
    if (dtype.has_value() && c10::isFloatingType(info.dtype) && *dtype != info.dtype) {
      t = t.to(*dtype);
    }
    return t;
  });
}

absl::StatusOr<TensorMap> SafetensorsReader::ReadAll(std::optional<torch::ScalarType> dtype) const {
  TensorMap out;
  for (const TensorInfo& info : tensors_) {
    LV_ASSIGN_OR_RETURN(out[info.name], Get(info.name, dtype));
  }
  return out;
}

absl::StatusOr<TensorMap> ReadSafetensors(const std::string& path,
                                          std::optional<torch::ScalarType> dtype) {
  LV_ASSIGN_OR_RETURN(auto reader, SafetensorsReader::Open(path));
  return reader->ReadAll(dtype);
}

}  // namespace linvideo::core::io
