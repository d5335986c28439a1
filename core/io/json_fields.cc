#include "core/io/json_fields.h"

#include "absl/strings/str_cat.h"

namespace linvideo::core::io {
namespace {

using json = nlohmann::json;

bool IsInt(const json& v) { return v.is_number_integer(); }
bool IsNumber(const json& v) { return v.is_number(); }

// Reads j[key] into *out when present; `accept` checks the type, `what` names it in errors.
template <typename T, typename Accept>
absl::Status ReadScalar(const json& j, const char* key, absl::string_view context, T* out,
                        Accept accept, const char* what) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!accept(*it)) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": field '", key, "' must be ", what, ", got ", it->dump()));
  }
  *out = it->get<T>();
  return absl::OkStatus();
}

template <typename T, typename Accept>
absl::Status ReadList(const json& j, const char* key, absl::string_view context,
                      std::vector<T>* out, Accept accept, const char* what) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": field '", key, "' must be a list of ", what, ", got ", it->dump()));
  }
  std::vector<T> values;
  for (const json& v : *it) {
    if (!accept(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          context, ": field '", key, "' must be a list of ", what, ", got ", it->dump()));
    }
    values.push_back(v.get<T>());
  }
  *out = std::move(values);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadJsonField(const json& j, const char* key, absl::string_view context,
                           int64_t* out) {
  return ReadScalar(j, key, context, out, IsInt, "an integer");
}
absl::Status ReadJsonField(const json& j, const char* key, absl::string_view context, double* out) {
  return ReadScalar(j, key, context, out, IsNumber, "a number");
}
absl::Status ReadJsonField(const json& j, const char* key, absl::string_view context, bool* out) {
  return ReadScalar(
      j, key, context, out, [](const json& v) { return v.is_boolean(); }, "true or false");
}
absl::Status ReadJsonField(const json& j, const char* key, absl::string_view context,
                           std::string* out) {
  return ReadScalar(
      j, key, context, out, [](const json& v) { return v.is_string(); }, "a string");
}
absl::Status ReadJsonField(const json& j, const char* key, absl::string_view context,
                           std::vector<int64_t>* out) {
  return ReadList(j, key, context, out, IsInt, "integers");
}
absl::Status ReadJsonField(const json& j, const char* key, absl::string_view context,
                           std::vector<double>* out) {
  return ReadList(j, key, context, out, IsNumber, "numbers");
}

absl::Status ReadJsonField(const json& j, const char* key, absl::string_view context,
                           std::vector<bool>* out) {
  return ReadList(
      j, key, context, out, [](const json& v) { return v.is_boolean(); }, "true/false values");
}

absl::Status RequireJsonField(const json& j, const char* key, absl::string_view context) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(context, ": missing required field '", key, "'"));
}

}  // namespace linvideo::core::io
