#include "core/io/json_file.h"

#include <exception>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/io/file_util.h"

namespace linvideo::core::io {
namespace {

using nlohmann::json;

// Thrown from the parser callback to abort parsing with our own message.
struct StrictJsonError : std::exception {
  explicit StrictJsonError(std::string m) : message(std::move(m)) {}
  const char* what() const noexcept override { return message.c_str(); }
  std::string message;
};

// 1-based line and column of byte offset `pos` (nlohmann reports the byte after the bad token).
void LineColumn(std::string_view text, size_t pos, size_t* line, size_t* column) {
  *line = 1;
  *column = 1;
  if (pos > text.size()) pos = text.size();
  for (size_t i = 0; i + 1 < pos; ++i) {
    if (text[i] == '\n') {
      ++*line;
      *column = 1;
    } else {
      ++*column;
    }
  }
}

}  // namespace

absl::StatusOr<json> ParseJson(std::string_view text, const std::string& source) {
  // One set of seen keys per open object: nlohmann keeps only one value for duplicated keys, which
  // would let a file say two different things about one tensor.
  std::vector<std::set<std::string>> keys;
  json::parser_callback_t check = [&keys](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          throw StrictJsonError(
              absl::StrCat("nesting deeper than ", kMaxJsonDepth, " levels is not allowed"));
        }
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && parsed.is_string() &&
            !keys.back().insert(parsed.get<std::string>()).second) {
          throw StrictJsonError(
              absl::StrCat("duplicate key \"", parsed.get<std::string>(), "\" in one object"));
        }
        break;
      default:
        break;
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the input ended there; raw NULs are never valid JSON.
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    size_t line, column;
    LineColumn(text, nul + 1, &line, &column);
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON at line ", line,
                                                   " column ", column, " (byte ", nul + 1,
                                                   "): NUL byte"));
  }
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::parse_error& e) {
    size_t line, column;
    LineColumn(text, e.byte, &line, &column);
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON at line ", line,
                                                   " column ", column, " (byte ", e.byte,
                                                   "): ", e.what()));
  } catch (const StrictJsonError& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON: ", e.message));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON: ", e.what()));
  }
}

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileToString(path, kMaxJsonFileBytes);
  if (!text.ok()) return text.status();
  return ParseJson(*text, path);
}

absl::Status WriteJsonFile(const std::string& path, const json& value) {
  std::string text;
  try {
    text = value.dump(2) + "\n";
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot write ", path, ": value is not serialisable JSON: ", e.what()));
  }
  return WriteFileAtomic(path, text);
}

absl::Status WriteFileAtomic(const std::string& path, const std::string& bytes) {
  return WriteFileAtomicWith(
      path, [&bytes](FileSink& sink) { return sink.Write(bytes.data(), bytes.size()); });
}

}  // namespace linvideo::core::io
