// torch.save checkpoints: LibTorch's zip reader for the archive, and a restricted unpickler for
// data.pkl that knows only what a state dict needs.
//
// Why not LibTorch's unpickler (torch::jit::readArchiveAndTensors)? LibTorch 1.13's cannot read
// what torch.save(model.state_dict()) writes: the OrderedDict's _metadata attribute is pickled with
// SETITEM and BUILD, which it rejects, as it does nn.Parameter (torch_checkpoint_test, the
// python3-torch cases). The pickle is small (names, shapes, storage keys); the weights are the
// archive's storage records, read through LibTorch's PyTorchStreamReader one at a time.
#include "core/io/torch_checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status.h"

namespace linvideo::core::io {
namespace {

namespace fs = std::filesystem;

// data.pkl holds names, shapes and storage keys: a few MB for the largest models.
constexpr uint64_t kMaxPickleBytes = uint64_t{64} << 20;

// A Python value as far as a state dict's pickle needs one.
struct Value;
using ValuePtr = std::shared_ptr<Value>;
struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor
  };
  Kind kind = Kind::kNone;
  int64_t i = 0;  // kBool, kInt
  double f = 0;
  std::string s;                                       // kString, kBytes, kGlobal ("mod.name")
  std::vector<ValuePtr> items;                         // kTuple, kList
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // kDict, in insertion order
  torch::Tensor tensor;                                // kStorage (1-D, its dtype), kTensor
};

// A LibTorch exception's message without its C++ stack trace.
std::string FirstLine(const std::exception& e) {
  std::string what = e.what();
  if (const size_t nl = what.find("\nException raised from"); nl != std::string::npos) {
    what.resize(nl);
  }
  return what;
}

const char* KindName(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNone:
      return "None";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kBytes:
      return "bytes";
    case Value::Kind::kTuple:
      return "tuple";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kGlobal:
      return "global";
    case Value::Kind::kStorage:
      return "storage";
    case Value::Kind::kTensor:
      return "tensor";
  }
  return "?";
}

// torch.<Name>Storage -> dtype.
std::optional<torch::ScalarType> StorageDtype(const std::string& global) {
  static const std::map<std::string, torch::ScalarType> kTypes = {
      {"torch.FloatStorage", torch::kFloat}, {"torch.DoubleStorage", torch::kDouble},
      {"torch.HalfStorage", torch::kHalf},   {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kLong},   {"torch.IntStorage", torch::kInt},
      {"torch.ShortStorage", torch::kShort}, {"torch.CharStorage", torch::kChar},
      {"torch.ByteStorage", torch::kByte},   {"torch.BoolStorage", torch::kBool}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) return std::nullopt;
  return it->second;
}

// Runs data.pkl. Every failure is a status naming the offset; nothing recurses, so a hostile
// pickle's depth costs nothing but its own bytes.
class StateDictUnpickler {
 public:
  // Bounds on what a hostile pickle can make us hold (a state dict of 100k tensors needs ~1M
  // values and a few MB of pickle).
  static constexpr size_t kMaxValues = size_t{1} << 23;

  // `convert`: floating storages are converted to it as they are read, so the file's bytes of a
  // storage are freed before the next is read (peak: the converted tensors plus one record).
  StateDictUnpickler(const std::string& pickle, const TorchRecordReader& records,
                     std::optional<torch::ScalarType> convert)
      : p_(pickle), records_(records), convert_(convert) {}
  // Containers are emptied one by one before they go: a hostile pickle's million nested lists (or
  // a list holding itself) would otherwise be freed by recursion (or never).
  ~StateDictUnpickler() {
    for (const ValuePtr& v : all_) {
      v->items.clear();
      v->entries.clear();
    }
  }
  StateDictUnpickler(const StateDictUnpickler&) = delete;
  StateDictUnpickler& operator=(const StateDictUnpickler&) = delete;

  absl::StatusOr<ValuePtr> Run() {
    while (!stopped_) {
      if (pos_ >= p_.size()) return Error("the pickle ends without STOP");
      if (all_.size() > kMaxValues) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the pickle builds over ", kMaxValues, " values; a state dict needs a few per tensor"));
      }
      const size_t at = pos_;
      const auto op = static_cast<unsigned char>(p_[pos_++]);
      if (absl::Status s = Step(op); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(s.message(), " (opcode 0x", absl::Hex(op),
                                                   " at byte ", at, " of data.pkl)"));
      }
    }
    if (stack_.size() != 1 || !marks_.empty()) return Error("the pickle leaves a malformed stack");
    return stack_.back();
  }

 private:
  static absl::Status Error(const std::string& what) { return absl::DataLossError(what); }

  absl::StatusOr<std::string_view> Bytes(size_t n) {
    if (n > p_.size() - pos_) return Error("the pickle is cut short");
    std::string_view out(p_.data() + pos_, n);
    pos_ += n;
    return out;
  }
  absl::StatusOr<uint64_t> Unsigned(size_t n) {  // little-endian
    LV_ASSIGN_OR_RETURN(std::string_view b, Bytes(n));
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t(static_cast<unsigned char>(b[k])) << (8 * k);
    return v;
  }
  absl::StatusOr<std::string> Line() {
    const size_t nl = p_.find('\n', pos_);
    if (nl == std::string::npos) return Error("the pickle is cut short in a GLOBAL");
    std::string out = p_.substr(pos_, nl - pos_);
    pos_ = nl + 1;
    return out;
  }
  absl::StatusOr<ValuePtr> Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return Error("the pickle pops an empty stack");
    }
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  absl::StatusOr<ValuePtr> Top() {
    if (stack_.empty()) return Error("the pickle reads an empty stack");
    return stack_.back();
  }
  // The values since the last MARK, which is dropped.
  absl::StatusOr<std::vector<ValuePtr>> PopMark() {
    if (marks_.empty()) return Error("the pickle has no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> out(std::make_move_iterator(stack_.begin() + m),
                              std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return out;
  }
  void Push(ValuePtr v) { stack_.push_back(std::move(v)); }
  ValuePtr Make(Value::Kind kind) {
    auto v = std::make_shared<Value>();
    v->kind = kind;
    all_.push_back(v);
    return v;
  }
  ValuePtr Int(int64_t i) {
    auto v = Make(Value::Kind::kInt);
    v->i = i;
    return v;
  }
  ValuePtr String(std::string_view s, Value::Kind kind = Value::Kind::kString) {
    auto v = Make(kind);
    v->s = std::string(s);
    return v;
  }
  ValuePtr Tuple(std::vector<ValuePtr> items) {
    auto v = Make(Value::Kind::kTuple);
    v->items = std::move(items);
    return v;
  }
  absl::Status Memoize(uint64_t key) {
    LV_ASSIGN_OR_RETURN(ValuePtr top, Top());
    memo_[key] = std::move(top);
    return absl::OkStatus();
  }
  absl::Status Recall(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) return Error(absl::StrCat("the pickle reads memo ", key, " unset"));
    Push(it->second);
    return absl::OkStatus();
  }
  absl::Status SetItems(Value& dict, std::vector<ValuePtr> kv) {
    if (dict.kind != Value::Kind::kDict) return Error("SETITEM(S) on a non-dict");
    if (kv.size() % 2 != 0) return Error("SETITEMS with an odd number of values");
    for (size_t k = 0; k < kv.size(); k += 2) dict.entries.emplace_back(kv[k], kv[k + 1]);
    return absl::OkStatus();
  }
  absl::Status Append(Value& list, std::vector<ValuePtr> items) {
    if (list.kind != Value::Kind::kList) return Error("APPEND(S) on a non-list");
    for (auto& item : items) list.items.push_back(std::move(item));
    return absl::OkStatus();
  }

  absl::Status Step(unsigned char op) {
    switch (op) {
      case 0x80:  // PROTO
        return Bytes(1).status();
      case 0x95:  // FRAME: a length hint
        return Bytes(8).status();
      case '.':  // STOP
        stopped_ = true;
        return absl::OkStatus();
      case '(':  // MARK
        marks_.push_back(stack_.size());
        return absl::OkStatus();
      case '0':  // POP
        return Pop().status();
      case '1':  // POP_MARK
        return PopMark().status();
      case '2': {  // DUP
        LV_ASSIGN_OR_RETURN(ValuePtr top, Top());
        Push(top);
        return absl::OkStatus();
      }
      case 'N':
        Push(Make(Value::Kind::kNone));
        return absl::OkStatus();
      case 0x88:    // NEWTRUE
      case 0x89: {  // NEWFALSE
        auto v = Make(Value::Kind::kBool);
        v->i = op == 0x88;
        Push(v);
        return absl::OkStatus();
      }
      case 'J': {  // BININT: 4-byte signed
        LV_ASSIGN_OR_RETURN(uint64_t u, Unsigned(4));
        Push(Int(static_cast<int32_t>(static_cast<uint32_t>(u))));
        return absl::OkStatus();
      }
      case 'K':    // BININT1
      case 'M': {  // BININT2
        LV_ASSIGN_OR_RETURN(uint64_t u, Unsigned(op == 'K' ? 1 : 2));
        Push(Int(static_cast<int64_t>(u)));
        return absl::OkStatus();
      }
      case 0x8a: {  // LONG1: n-byte two's complement
        LV_ASSIGN_OR_RETURN(uint64_t n, Unsigned(1));
        if (n > 8) return Error("an integer wider than 64 bits");
        LV_ASSIGN_OR_RETURN(uint64_t u, Unsigned(n));
        if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~uint64_t{0} << (8 * n);
        Push(Int(static_cast<int64_t>(u)));
        return absl::OkStatus();
      }
      case 'G': {  // BINFLOAT: big-endian double
        LV_ASSIGN_OR_RETURN(std::string_view b, Bytes(8));
        uint64_t u = 0;
        for (char c : b) u = (u << 8) | static_cast<unsigned char>(c);
        auto v = Make(Value::Kind::kFloat);
        std::memcpy(&v->f, &u, sizeof(double));
        Push(v);
        return absl::OkStatus();
      }
      case 'X':     // BINUNICODE
      case 0x8c:    // SHORT_BINUNICODE
      case 0x8d:    // BINUNICODE8
      case 'B':     // BINBYTES
      case 'C':     // SHORT_BINBYTES
      case 0x8e: {  // BINBYTES8
        const size_t width = (op == 0x8c || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
        LV_ASSIGN_OR_RETURN(uint64_t n, Unsigned(width));
        LV_ASSIGN_OR_RETURN(std::string_view b, Bytes(n));
        const bool text = op == 'X' || op == 0x8c || op == 0x8d;
        Push(String(b, text ? Value::Kind::kString : Value::Kind::kBytes));
        return absl::OkStatus();
      }
      case ')':
        Push(Tuple({}));
        return absl::OkStatus();
      case 0x85:  // TUPLE1..3
      case 0x86:
      case 0x87: {
        std::vector<ValuePtr> items(op - 0x84);
        for (size_t k = items.size(); k-- > 0;) {
          LV_ASSIGN_OR_RETURN(items[k], Pop());
        }
        Push(Tuple(std::move(items)));
        return absl::OkStatus();
      }
      case 't': {  // TUPLE
        LV_ASSIGN_OR_RETURN(auto items, PopMark());
        Push(Tuple(std::move(items)));
        return absl::OkStatus();
      }
      case ']':
        Push(Make(Value::Kind::kList));
        return absl::OkStatus();
      case 'l': {  // LIST
        LV_ASSIGN_OR_RETURN(auto items, PopMark());
        auto list = Make(Value::Kind::kList);
        list->items = std::move(items);
        Push(list);
        return absl::OkStatus();
      }
      case '}':
        Push(Make(Value::Kind::kDict));
        return absl::OkStatus();
      case 'd': {  // DICT
        LV_ASSIGN_OR_RETURN(auto kv, PopMark());
        auto dict = Make(Value::Kind::kDict);
        LV_RETURN_IF_ERROR(SetItems(*dict, std::move(kv)));
        Push(dict);
        return absl::OkStatus();
      }
      case 'a': {  // APPEND
        LV_ASSIGN_OR_RETURN(ValuePtr item, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr list, Top());
        return Append(*list, {item});
      }
      case 'e': {  // APPENDS
        LV_ASSIGN_OR_RETURN(auto items, PopMark());
        LV_ASSIGN_OR_RETURN(ValuePtr list, Top());
        return Append(*list, std::move(items));
      }
      case 's': {  // SETITEM
        LV_ASSIGN_OR_RETURN(ValuePtr value, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr key, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr dict, Top());
        return SetItems(*dict, {key, value});
      }
      case 'u': {  // SETITEMS
        LV_ASSIGN_OR_RETURN(auto kv, PopMark());
        LV_ASSIGN_OR_RETURN(ValuePtr dict, Top());
        return SetItems(*dict, std::move(kv));
      }
      case 'q':    // BINPUT
      case 'r': {  // LONG_BINPUT
        LV_ASSIGN_OR_RETURN(uint64_t key, Unsigned(op == 'q' ? 1 : 4));
        return Memoize(key);
      }
      case 0x94:  // MEMOIZE
        return Memoize(memo_.size());
      case 'h':    // BINGET
      case 'j': {  // LONG_BINGET
        LV_ASSIGN_OR_RETURN(uint64_t key, Unsigned(op == 'h' ? 1 : 4));
        return Recall(key);
      }
      case 'c': {  // GLOBAL "module\nname\n"
        LV_ASSIGN_OR_RETURN(std::string module, Line());
        LV_ASSIGN_OR_RETURN(std::string name, Line());
        Push(String(absl::StrCat(module, ".", name), Value::Kind::kGlobal));
        return absl::OkStatus();
      }
      case 0x93: {  // STACK_GLOBAL
        LV_ASSIGN_OR_RETURN(ValuePtr name, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr module, Pop());
        if (name->kind != Value::Kind::kString || module->kind != Value::Kind::kString) {
          return Error("STACK_GLOBAL of non-strings");
        }
        Push(String(absl::StrCat(module->s, ".", name->s), Value::Kind::kGlobal));
        return absl::OkStatus();
      }
      case 'Q': {  // BINPERSID: a storage
        LV_ASSIGN_OR_RETURN(ValuePtr pid, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr storage, LoadStorage(*pid));
        Push(storage);
        return absl::OkStatus();
      }
      case 'R': {  // REDUCE
        LV_ASSIGN_OR_RETURN(ValuePtr args, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr callable, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr out, Reduce(*callable, *args));
        Push(out);
        return absl::OkStatus();
      }
      case 'b': {  // BUILD: object state; a state dict's OrderedDict carries _metadata, dropped
        LV_ASSIGN_OR_RETURN(ValuePtr state, Pop());
        LV_ASSIGN_OR_RETURN(ValuePtr obj, Top());
        if (obj->kind != Value::Kind::kDict && obj->kind != Value::Kind::kTensor) {
          return Error(absl::StrCat("BUILD on a ", KindName(*obj)));
        }
        return absl::OkStatus();
      }
      default:
        return absl::InvalidArgumentError(
            "a pickle opcode a state dict does not use (only dicts, lists, tuples, numbers, "
            "strings and tensors are read)");
    }
  }

  // ('storage', torch.<T>Storage, key, location, numel) -> the record data/<key> as a 1-D tensor.
  absl::StatusOr<ValuePtr> LoadStorage(const Value& pid) {
    const auto& t = pid.items;
    if (pid.kind != Value::Kind::kTuple || t.size() != 5 || t[0]->kind != Value::Kind::kString ||
        t[0]->s != "storage" || t[1]->kind != Value::Kind::kGlobal ||
        t[2]->kind != Value::Kind::kString || t[4]->kind != Value::Kind::kInt) {
      return Error("a persistent id that is not a torch.save storage");
    }
    auto dtype = StorageDtype(t[1]->s);
    if (!dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage type ", t[1]->s,
                       " is not supported (float, double, half, "
                       "bfloat16, long, int, short, char, byte, bool)"));
    }
    const std::string& key = t[2]->s;
    if (auto it = storages_.find(key); it != storages_.end()) {
      if (it->second.first != *dtype) {
        return Error(absl::StrCat("storage '", key, "' is read as two dtypes"));
      }
      return it->second.second;
    }
    // torch.save names storages str(int): other keys could alias one record (the zip lookup
    // stops at a NUL and ignores case) and read it many times over.
    if (key.empty() || key.size() > 19 ||
        !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return Error(
          absl::StrCat("storage key '", absl::CHexEscape(key), "' is not a decimal record number"));
    }
    const std::string record = "data/" + key;
    LV_ASSIGN_OR_RETURN(torch::Tensor bytes, records_(record));
    if (bytes.scalar_type() != torch::kUInt8 || bytes.dim() != 1 || !bytes.is_contiguous() ||
        !bytes.device().is_cpu()) {
      return absl::InternalError("the record reader must return a 1-D contiguous uint8 CPU tensor");
    }
    const int64_t numel = t[4]->i;
    const int64_t element = c10::elementSize(*dtype);
    const int64_t nbytes = bytes.numel();
    if (numel < 0 || nbytes % element != 0 || numel != nbytes / element) {
      return Error(absl::StrCat("storage record '", record, "' holds ", nbytes, " bytes, not ",
                                numel, " elements of ", c10::toString(*dtype)));
    }
    auto v = Make(Value::Kind::kStorage);
    v->tensor = torch::from_blob(
        bytes.data_ptr(), {numel}, [bytes](void*) {}, torch::TensorOptions().dtype(*dtype));
    if (convert_ && c10::isFloatingType(*dtype) && *dtype != *convert_) {
      v->tensor = v->tensor.to(*convert_);  // the record's bytes go with the blob
    }
    storages_[key] = {*dtype, v};
    return v;
  }

  static absl::StatusOr<std::vector<int64_t>> Ints(const Value& v, const char* what) {
    if (v.kind != Value::Kind::kTuple && v.kind != Value::Kind::kList) {
      return absl::DataLossError(absl::StrCat("a tensor's ", what, " is a ", KindName(v)));
    }
    if (v.items.size() > kMaxTensorRank) {
      return absl::DataLossError(absl::StrCat("a tensor of rank ", v.items.size()));
    }
    std::vector<int64_t> out;
    for (const auto& item : v.items) {
      if (item->kind != Value::Kind::kInt || item->i < 0) {
        return absl::DataLossError(
            absl::StrCat("a tensor's ", what, " holds a negative or non-int"));
      }
      out.push_back(item->i);
    }
    return out;
  }

  // storage.as_strided(size, stride, offset) after checking it stays inside the storage.
  absl::StatusOr<ValuePtr> RebuildTensor(const std::vector<ValuePtr>& a) {
    if (a.size() < 4 || a[0]->kind != Value::Kind::kStorage || a[1]->kind != Value::Kind::kInt) {
      return absl::DataLossError("_rebuild_tensor without (storage, offset, size, stride)");
    }
    LV_ASSIGN_OR_RETURN(std::vector<int64_t> size, Ints(*a[2], "size"));
    LV_ASSIGN_OR_RETURN(std::vector<int64_t> stride, Ints(*a[3], "stride"));
    const int64_t offset = a[1]->i;
    const int64_t available = a[0]->tensor.numel();
    if (size.size() != stride.size()) {
      return absl::DataLossError("a tensor's size and stride differ in rank");
    }
    if (offset < 0) return absl::DataLossError("a tensor at a negative storage offset");
    // The element count and the largest index touched, bounded before any product can overflow
    // (every factor below 2^62 and at most kMaxTensorRank terms of at most 2^124 each).
    constexpr __int128 kMaxElements = __int128{1} << 62;
    __int128 count = 1, last = offset;
    for (int64_t n : size) {
      count *= n;
      if (count > kMaxElements) return absl::DataLossError("a tensor with over 2^62 elements");
    }
    const bool empty = count == 0;
    for (size_t d = 0; d < size.size() && !empty; ++d) {
      if (size[d] > 1 && (stride[d] > available || (stride[d] > 0 && size[d] - 1 > available))) {
        return absl::DataLossError("a tensor reaches past the end of its storage");
      }
      last += static_cast<__int128>(size[d] - 1) * stride[d];
    }
    if (!empty && last >= available) {
      return absl::DataLossError("a tensor reaches past the end of its storage");
    }
    if (count > available) {
      // Only an overlapping view (e.g. expand()) has more elements than its storage; reading it
      // would materialise them all.
      return absl::InvalidArgumentError(
          absl::StrCat("a tensor of ", static_cast<int64_t>(count), " elements over a storage of ",
                       available, " (an expanded view; save it with .contiguous())"));
    }
    auto v = Make(Value::Kind::kTensor);
    v->tensor = a[0]->tensor.as_strided(size, stride, empty ? 0 : offset);
    return v;
  }

  absl::StatusOr<ValuePtr> Reduce(const Value& callable, const Value& args) {
    if (callable.kind != Value::Kind::kGlobal || args.kind != Value::Kind::kTuple) {
      return Error("REDUCE of a non-global or without an argument tuple");
    }
    const std::string& f = callable.s;
    const auto& a = args.items;
    if (f == "collections.OrderedDict") {
      if (!a.empty()) return Error("OrderedDict with arguments");
      return Make(Value::Kind::kDict);
    }
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") {
      return RebuildTensor(a);
    }
    if (f == "torch._utils._rebuild_parameter" ||
        f == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != Value::Kind::kTensor) {
        return Error("_rebuild_parameter without a tensor");
      }
      return a[0];
    }
    return absl::InvalidArgumentError(
        absl::StrCat("the pickle calls ", f,
                     ", which a state dict does not (only tensors, OrderedDict and nn.Parameter "
                     "are rebuilt; nothing else is ever run)"));
  }

  const std::string& p_;
  const TorchRecordReader& records_;
  size_t pos_ = 0;
  bool stopped_ = false;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, ValuePtr> memo_;
  std::optional<torch::ScalarType> convert_;
  std::map<std::string, std::pair<torch::ScalarType, ValuePtr>>
      storages_;               // key -> (as saved, storage)
  std::vector<ValuePtr> all_;  // every value made, for the destructor
};

// A dict of string -> tensor, or the state dict inside a training checkpoint's wrapper.
absl::StatusOr<const Value*> FindStateDict(const std::string& source, const Value& root) {
  if (root.kind != Value::Kind::kDict) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, " holds a ", KindName(root),
                     ", not a state dict (a dict of name -> tensor); save model.state_dict()"));
  }
  bool any_tensor = false;
  for (const auto& [k, v] : root.entries)
    any_tensor = any_tensor || v->kind == Value::Kind::kTensor;
  if (!any_tensor) {
    for (const char* wrapper : {"state_dict", "model", "module"}) {
      for (const auto& [k, v] : root.entries) {
        if (k->kind == Value::Kind::kString && k->s == wrapper && v->kind == Value::Kind::kDict) {
          return v.get();
        }
      }
    }
  }
  return &root;
}

absl::StatusOr<TensorMap> ParseStateDict(const std::string& source, const std::string& pickle,
                                         const TorchRecordReader& records,
                                         std::optional<torch::ScalarType> dtype) {
  StateDictUnpickler unpickler(pickle, records, dtype);
  auto root = unpickler.Run();
  if (!root.ok()) {
    return absl::Status(root.status().code(),
                        absl::StrCat(source, " cannot be read as a torch.save checkpoint: ",
                                     root.status().message()));
  }
  LV_ASSIGN_OR_RETURN(const Value* dict, FindStateDict(source, **root));
  TensorMap out;
  // One contiguous copy per tensor value, however many keys name it (memo references).
  std::map<const Value*, torch::Tensor> done;
  for (const auto& [key, value] : dict->entries) {
    if (key->kind != Value::Kind::kString) {
      return absl::InvalidArgumentError(absl::StrCat(source, " has a key of type ", KindName(*key),
                                                     "; a state dict's keys are names"));
    }
    if (value->kind != Value::Kind::kTensor) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": \"", key->s, "\" is a ", KindName(*value),
                       ", not a tensor; only state dicts (name -> tensor) are read"));
    }
    auto it = done.find(value.get());
    if (it == done.end()) {
      torch::Tensor t = value->tensor;
      if (dtype && t.is_floating_point() && t.scalar_type() != *dtype) t = t.to(*dtype);
      it = done.emplace(value.get(), t.contiguous()).first;
    }
    out[key->s] = it->second;
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, " holds an empty state dict"));
  }
  return out;
}

}  // namespace

bool IsTorchCheckpointName(const std::string& file_name) {
  for (const char* suffix : kTorchCheckpointSuffixes) {
    if (absl::EndsWith(file_name, suffix)) return true;
  }
  return false;
}

absl::StatusOr<TensorMap> ParseTorchStateDict(const std::string& source, const std::string& pickle,
                                              const TorchRecordReader& records,
                                              std::optional<torch::ScalarType> dtype) {
  try {
    return ParseStateDict(source, pickle, records, dtype);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("reading ", source, ": out of memory"));
  } catch (const std::exception& e) {  // LibTorch (an allocation, a conversion)
    return absl::ResourceExhaustedError(absl::StrCat("reading ", source, ": ", FirstLine(e)));
  }
}

absl::StatusOr<TensorMap> ReadTorchCheckpoint(const std::string& path,
                                              std::optional<torch::ScalarType> dtype) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("checkpoint '", path, "' does not exist"));
  }
  if (dtype && !c10::isFloatingType(*dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("reading ", path, ": the target dtype must be floating"));
  }
  std::array<char, 4> magic{};
  {
    std::ifstream in(path, std::ios::binary);
    in.read(magic.data(), magic.size());
    if (in.gcount() < static_cast<std::streamsize>(magic.size())) {
      return absl::DataLossError(absl::StrCat(path, " is too short to be a torch.save checkpoint"));
    }
  }
  if (!(magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4)) {
    if (static_cast<unsigned char>(magic[0]) == 0x80) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          " is in torch.save's legacy format (PyTorch < 1.6 or "
          "_use_new_zipfile_serialization=False), which is not read; re-save it in Python: "
          "torch.save(torch.load(f, map_location='cpu'), f)"));
    }
    return absl::DataLossError(absl::StrCat(
        path,
        " is not a torch.save checkpoint (no zip archive; expected .pth/.pt from torch.save)"));
  }

  TensorMap out;
  try {
    caffe2::serialize::PyTorchStreamReader archive(path);
    if (!archive.hasRecord("data.pkl")) {
      return absl::InvalidArgumentError(absl::StrCat(
          path,
          " has no data.pkl: a TorchScript archive (torch.jit.save) or another zip, not a "
          "torch.save state dict"));
    }
    if (archive.hasRecord("byteorder")) {
      auto [order, n] = archive.getRecord("byteorder");
      if (std::string(static_cast<const char*>(order.get()), n) != "little") {
        return absl::InvalidArgumentError(
            absl::StrCat(path, " was saved on a big-endian machine; only little-endian is read"));
      }
    }
    auto [pickle_data, pickle_size] = archive.getRecord("data.pkl");
    if (pickle_size > kMaxPickleBytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": data.pkl holds ", pickle_size,
                                                     " bytes; a state dict's is at most ",
                                                     kMaxPickleBytes >> 20, " MiB"));
    }
    const uint64_t file_bytes = fs::file_size(path, ec);
    uint64_t read_bytes = 0;
    const std::string pickle(static_cast<const char*>(pickle_data.get()), pickle_size);
    LV_ASSIGN_OR_RETURN(
        out, ParseTorchStateDict(
                 path, pickle,
                 [&archive, &read_bytes,
                  file_bytes](const std::string& name) -> absl::StatusOr<torch::Tensor> {
                   try {
                     if (!archive.hasRecord(name)) {
                       return absl::DataLossError(
                           absl::StrCat("storage record '", name, "' is missing from the archive"));
                     }
                     auto [data, n] = archive.getRecord(name);
                     // torch.save stores records uncompressed: together they fit in the file.
                     read_bytes += n;
                     if (read_bytes > file_bytes) {
                       return absl::DataLossError(
                           "the storage records add up to more than the file holds");
                     }
                     auto owner = std::make_shared<at::DataPtr>(std::move(data));
                     return torch::from_blob(
                         owner->get(), {static_cast<int64_t>(n)}, [owner](void*) {}, torch::kUInt8);
                   } catch (const std::bad_alloc&) {
                     throw;
                   } catch (const std::exception& e) {  // a damaged record (CRC, short read)
                     return absl::DataLossError(
                         absl::StrCat("storage record '", name, "': ", FirstLine(e)));
                   }
                 },
                 dtype));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("reading ", path, ": out of memory"));
  } catch (const std::exception& e) {  // the zip reader throws c10::Error on a damaged archive
    return absl::DataLossError(
        absl::StrCat(path, " cannot be read as a torch.save checkpoint: ", FirstLine(e)));
  }
  return out;
}

}  // namespace linvideo::core::io
