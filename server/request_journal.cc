#include "server/request_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/io/file_util.h"
#include "core/io/json_file.h"
#include "server/log.h"

namespace linvideo::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kResultMagic[8] = {'L', 'V', 'R', 'E', 'S', 'U', 'L', 'T'};
constexpr char kResultSuffix[] = ".result";
// A stored result is read whole; max_stored_results_mb caps what is written far below this.
constexpr uint64_t kMaxResultFileBytes = uint64_t{4} << 30;

// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), updated over `size` bytes.
uint32_t Crc32(uint32_t crc, const void* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

absl::Status Errno(const std::string& what) {
  const int err = errno;
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOSPC || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::FailedPreconditionError(msg);
}

std::string OutputKindName(OutputKind k) {
  switch (k) {
    case OutputKind::kMp4:
      return "mp4";
    case OutputKind::kWebm:
      return "webm";
    case OutputKind::kPngFrames:
      return "png";
  }
  return "mp4";
}

absl::StatusOr<OutputKind> ParseOutputKind(const std::string& s) {
  if (s == "mp4") return OutputKind::kMp4;
  if (s == "webm") return OutputKind::kWebm;
  if (s == "png") return OutputKind::kPngFrames;
  return absl::InvalidArgumentError(absl::StrCat("unknown output kind '", s, "'"));
}

json StatsToJson(const RequestStats& s) {
  return {{"queue_s", s.queue_s},     {"compute_s", s.compute_s},    {"decode_s", s.decode_s},
          {"encode_s", s.encode_s},   {"total_s", s.total_s},        {"start_s", s.start_s},
          {"max_batch", s.max_batch}, {"video_bytes", s.video_bytes}};
}

RequestStats StatsFromJson(const json& j) {
  RequestStats s;
  s.queue_s = j.value("queue_s", 0.0);
  s.compute_s = j.value("compute_s", 0.0);
  s.decode_s = j.value("decode_s", 0.0);
  s.encode_s = j.value("encode_s", 0.0);
  s.total_s = j.value("total_s", 0.0);
  s.start_s = j.value("start_s", 0.0);
  s.max_batch = j.value("max_batch", 0);
  s.video_bytes = j.value("video_bytes", int64_t{0});
  return s;
}

std::string Dump(const json& j) {
  // Replacing invalid UTF-8 keeps a record writable; gRPC strings are valid UTF-8 already.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// What the client asked for beyond the prompt and seed (the resolved params hold those).
json RequestedJson(const GenerationParams& a) {
  auto number = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
  return {{"negative_prompt", a.negative_prompt},
          {"width", a.width},
          {"height", a.height},
          {"frames", a.frames},
          {"steps", a.steps},
          {"guidance", number(a.guidance)},
          {"shift", number(a.shift)},
          {"sampler", a.sampler.has_value() ? json(core::params::SamplerKindName(*a.sampler))
                                            : json(nullptr)}};
}

// The submit record's fields back as a RecoveredRequest (nlohmann throws on wrong types: the
// caller treats that as a corrupt record).
RecoveredRequest FromSubmitRecord(const json& j) {
  RecoveredRequest r;
  r.id = j.at("id").get<std::string>();
  r.model = j.at("model").get<std::string>();
  r.created = absl::FromUnixMicros(j.at("created_us").get<int64_t>());
  r.priority = j.at("priority").get<int>();
  const json& p = j.at("params");
  r.params.prompt = p.at("prompt").get<std::string>();
  r.params.negative_prompt = p.at("negative_prompt").get<std::string>();
  r.params.width = p.at("width").get<int64_t>();
  r.params.height = p.at("height").get<int64_t>();
  r.params.frames = p.at("frames").get<int64_t>();
  r.params.steps = p.at("steps").get<int64_t>();
  r.params.guidance = p.at("guidance").get<double>();
  r.params.shift = p.at("shift").get<double>();
  r.params.seed = p.at("seed").get<uint64_t>();
  auto sampler = core::params::ParseSamplerKind(p.at("sampler").get<std::string>());
  if (!sampler.ok()) throw std::invalid_argument(std::string(sampler.status().message()));
  r.params.sampler = *sampler;
  r.requested = r.params;
  if (auto it = j.find("requested"); it != j.end()) {
    // Unset fields: 0 sizes and steps, null guidance and shift, no sampler.
    const json& q = *it;
    GenerationParams& a = r.requested;
    a.negative_prompt = q.at("negative_prompt").get<std::string>();
    a.width = q.at("width").get<int64_t>();
    a.height = q.at("height").get<int64_t>();
    a.frames = q.at("frames").get<int64_t>();
    a.steps = q.at("steps").get<int64_t>();
    a.guidance =
        q.at("guidance").is_null() ? core::params::kUseDefault : q.at("guidance").get<double>();
    a.shift = q.at("shift").is_null() ? core::params::kUseDefault : q.at("shift").get<double>();
    a.sampler.reset();
    if (!q.at("sampler").is_null()) {
      auto asked = core::params::ParseSamplerKind(q.at("sampler").get<std::string>());
      if (!asked.ok()) throw std::invalid_argument(std::string(asked.status().message()));
      a.sampler = *asked;
    }
  }
  const json& o = j.at("output");
  auto kind = ParseOutputKind(o.at("kind").get<std::string>());
  if (!kind.ok()) throw std::invalid_argument(std::string(kind.status().message()));
  r.output.kind = *kind;
  r.output.fps = o.at("fps").get<int>();
  return r;
}

void ApplyEndRecord(const json& j, RecoveredRequest& r) {
  r.ended = true;
  const int code = j.at("code").get<int>();
  r.status = code == 0 ? absl::OkStatus()
                       : absl::Status(static_cast<absl::StatusCode>(code),
                                      j.at("message").get<std::string>());
  r.model_version = j.at("model_version").get<int64_t>();
  r.finished = absl::FromUnixMicros(j.at("finished_us").get<int64_t>());
  r.stats = StatsFromJson(j.at("stats"));
  r.mime = j.value("mime", "");
}

std::string Line(const std::string& json_text) {
  return absl::StrFormat("%08x %s", Crc32(0, json_text.data(), json_text.size()), json_text);
}

absl::Status WriteResultFile(const std::string& path, const std::string& id,
                             const EncodedOutput& out) {
  return core::io::WriteFileAtomicWith(path, [&](core::io::FileSink& sink) -> absl::Status {
    uint32_t crc = 0;
    auto put = [&](const void* data, size_t size) {
      crc = Crc32(crc, data, size);
      return sink.Write(data, size);
    };
    auto put_string = [&](const std::string& text) {
      const uint32_t len = static_cast<uint32_t>(text.size());
      if (auto s = put(&len, 4); !s.ok()) return s;
      return put(text.data(), text.size());
    };
    if (auto s = put(kResultMagic, sizeof kResultMagic); !s.ok()) return s;
    if (auto s = put_string(id); !s.ok()) return s;
    if (auto s = put_string(out.mime); !s.ok()) return s;
    const uint32_t count = static_cast<uint32_t>(out.blobs.size());
    if (auto s = put(&count, 4); !s.ok()) return s;
    for (const std::string& b : out.blobs) {
      const uint64_t len = b.size();
      if (auto s = put(&len, 8); !s.ok()) return s;
      if (auto s = put(b.data(), b.size()); !s.ok()) return s;
    }
    return sink.Write(&crc, 4);
  });
}

json EndRecord(const std::string& id, int64_t model_version, const absl::Status& status,
               absl::Time finished, const RequestStats& stats) {
  return {{"op", "end"},
          {"id", id},
          {"model_version", model_version},
          {"code", static_cast<int>(status.code())},
          {"message", std::string(status.message())},
          {"finished_us", absl::ToUnixMicros(finished)},
          {"stats", StatsToJson(stats)}};
}

}  // namespace

absl::StatusOr<EncodedOutput> LoadStoredResult(const std::string& path, const std::string& id) {
  absl::StatusOr<std::string> data = core::io::ReadFileToString(path, kMaxResultFileBytes);
  if (!data.ok()) {
    if (data.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(
          "the stored result was removed (its TTL passed or the results size cap evicted it)");
    }
    return data.status();
  }
  const std::string& d = *data;
  auto damaged = [&](const char* why) {
    return absl::DataLossError(
        absl::StrCat("stored result ", path, " is damaged (", why, "); it is not served"));
  };
  if (d.size() < sizeof kResultMagic + 16 ||
      std::memcmp(d.data(), kResultMagic, sizeof kResultMagic) != 0) {
    return damaged("bad header");
  }
  uint32_t stored_crc;
  std::memcpy(&stored_crc, d.data() + d.size() - 4, 4);
  if (Crc32(0, d.data(), d.size() - 4) != stored_crc) return damaged("checksum mismatch");
  size_t pos = sizeof kResultMagic;
  const size_t end = d.size() - 4;
  auto read = [&](void* out, size_t n) {
    if (end - pos < n) return false;
    std::memcpy(out, d.data() + pos, n);
    pos += n;
    return true;
  };
  auto read_string = [&](std::string* out) {
    uint32_t len = 0;
    if (!read(&len, 4) || end - pos < len) return false;
    out->assign(d.data() + pos, len);
    pos += len;
    return true;
  };
  EncodedOutput out;
  std::string owner;
  uint32_t count = 0;
  if (!read_string(&owner) || !read_string(&out.mime) || !read(&count, 4))
    return damaged("truncated");
  // A case-insensitive file system could map two ids to one file: never serve another's video.
  if (owner != id) return damaged("it belongs to another request");
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t len = 0;
    if (!read(&len, 8) || end - pos < len) return damaged("truncated");
    out.blobs.emplace_back(d.data() + pos, len);
    pos += len;
  }
  if (pos != end) return damaged("trailing bytes");
  return out;
}

std::string RequestJournal::ResultPath(const std::string& id) const {
  return absl::StrCat(options_.dir, "/results/", id, kResultSuffix);
}

absl::StatusOr<std::unique_ptr<RequestJournal>> RequestJournal::Open(
    const JournalOptions& options, std::vector<RecoveredRequest>* recovered) {
  std::error_code ec;
  fs::create_directories(options.dir + "/results", ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir ", options.dir, ": cannot create it: ", ec.message()));
  }
  std::unique_ptr<RequestJournal> j(new RequestJournal(options));
  absl::MutexLock lock(&j->mu_);
  if (absl::Status s = j->Replay(recovered); !s.ok()) return s;
  if (absl::Status s = j->RewriteLocked(); !s.ok()) return s;
  return j;
}

RequestJournal::File::~File() { ::close(fd); }

absl::Status RequestJournal::Replay(std::vector<RecoveredRequest>* recovered) {
  // Read a line at a time: a journal of any size replays (a whole-file read had a size cap, and a
  // journal beyond it stopped every start).
  std::error_code exists_ec;
  const bool present = fs::exists(JournalPath(), exists_ec);
  std::ifstream in;
  if (present) {
    in.open(JournalPath(), std::ios::binary);
    if (!in.is_open()) {
      return absl::FailedPreconditionError(absl::StrCat("state_dir: cannot read the journal ",
                                                        JournalPath(), ": ", std::strerror(errno)));
    }
  }
  std::map<std::string, RecoveredRequest> found;
  int64_t bad = 0;
  bool clean_stop = false;  // the last record is MarkCleanShutdown's
  if (present) {
    std::string line_text;
    for (size_t i = 0; std::getline(in, line_text); ++i) {
      const absl::string_view line = line_text;
      if (line.empty()) continue;
      // "<8 hex digits> <json>"; the last line may be torn by a crash mid-write.
      uint32_t crc = 0;
      if (line.size() < 10 || line[8] != ' ' || !absl::SimpleHexAtoi(line.substr(0, 8), &crc) ||
          Crc32(0, line.data() + 9, line.size() - 9) != crc) {
        ++bad;
        continue;
      }
      try {
        const json j = json::parse(line.substr(9));
        const std::string op = j.at("op").get<std::string>();
        const std::string id = j.at("id").get<std::string>();
        // A clean stop counts only as the journal's last record.
        clean_stop = op == "shutdown";
        if (clean_stop) continue;
        if (op == "submit") {
          found[id] = FromSubmitRecord(j);
          entries_[id] = Entry{};
          entries_[id].submit_line = std::string(line);
          continue;
        }
        auto it = found.find(id);
        if (it == found.end()) continue;  // its submit was forgotten
        Entry& e = entries_[id];
        if (op == "end") {
          ApplyEndRecord(j, it->second);
          e.end_line = std::string(line);
          e.finished = it->second.finished;
          if (j.contains("result")) {
            e.result_path = ResultPath(id);
            e.result_bytes = j.at("bytes").get<int64_t>();
            it->second.result_path = e.result_path;
          }
        } else if (op == "resume") {
          e.recoveries = j.at("n").get<int>();
        } else if (op == "forget") {
          found.erase(it);
          entries_.erase(id);
        }
      } catch (const std::exception& e) {
        ++bad;
        LV_LOG(WARNING) << "journal line " << i + 1 << " skipped: " << e.what();
      }
    }
  }
  if (present && in.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir: reading the journal ", JournalPath(), " failed"));
  }
  if (bad > 0) {
    LV_LOG(WARNING) << "journal " << JournalPath() << ": " << bad
                    << " torn or corrupt record(s) skipped (a crash mid-write leaves at most one)";
  }
  const absl::Time now = absl::Now();
  std::set<std::string> kept;
  for (auto& [id, r] : found) {
    Entry& e = entries_[id];
    if (r.ended && now - r.finished > options_.result_ttl) {  // expired while the server was down
      if (!e.result_path.empty()) std::remove(e.result_path.c_str());
      entries_.erase(id);
      continue;
    }
    if (r.ended && r.status.ok()) {
      // A done request whose result is missing or damaged runs again.
      absl::StatusOr<EncodedOutput> stored = LoadStoredResult(e.result_path, id);
      if (!stored.ok()) {
        LV_LOG(WARNING) << "request=" << id << " result unusable (" << stored.status()
                        << "); it runs again";
        if (!e.result_path.empty()) std::remove(e.result_path.c_str());
        const std::string submit_line = e.submit_line;
        const int recoveries = e.recoveries;
        e = Entry{};
        e.submit_line = submit_line;
        e.recoveries = recoveries;
        r = FromSubmitRecord(json::parse(submit_line.substr(9)));
      }
    }
    if (!r.ended) {
      // Queued or running when the server stopped: once more, unless it keeps coming back. Only
      // unclean exits count (a crash, a kill): a graceful stop (a rolling deploy) does not.
      if (!clean_stop) ++e.recoveries;
      if (e.recoveries > kMaxRecoveries) {
        r.ended = true;
        r.finished = now;
        r.status = absl::InternalError(absl::StrCat(
            "not run again: it was queued or running at ", kMaxRecoveries,
            " unclean server exits in a row (a request that crashes the server must not crash it "
            "at every start); submit it again if it should run"));
        e.end_line = Line(Dump(EndRecord(id, 0, r.status, now, RequestStats{})));
        e.finished = now;
        LV_LOG(WARNING) << "request=" << id << " " << r.status;
      } else if (e.recoveries > 0) {
        e.resume_line = Line(Dump({{"op", "resume"}, {"id", id}, {"n", e.recoveries}}));
      }
    }
    if (!e.result_path.empty()) {
      kept.insert(e.result_path);
      result_bytes_ += e.result_bytes;
    }
    recovered->push_back(r);
  }
  // Files no record points at: temp files of a write cut short, results of forgotten requests.
  std::error_code ec;
  for (fs::directory_iterator it(options_.dir + "/results", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code rm;
    if (!kept.count(it->path().string())) fs::remove(it->path(), rm);
  }
  return absl::OkStatus();
}

absl::Status RequestJournal::RewriteLocked() {
  std::string text;
  int64_t records = 0;
  for (const auto& [id, e] : entries_) {
    for (const std::string* line : {&e.submit_line, &e.resume_line, &e.end_line}) {
      if (line->empty()) continue;
      absl::StrAppend(&text, *line, "\n");
      ++records;
    }
  }
  absl::Status written = core::io::WriteFileAtomic(JournalPath(), text);
  // The old file may be gone (renamed over): never append to it again.
  file_.reset();
  if (!written.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("state_dir: cannot write the journal: ", written.message()));
  }
  const int fd = ::open(JournalPath().c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return Errno("state_dir: opening the journal");
  file_ = std::make_shared<const File>(fd);
  records_ = records;
  dirty_ = false;
  return absl::OkStatus();
}

absl::Status RequestJournal::AppendLocked(const std::string& json_text, std::string* line) {
  if (file_ == nullptr) {
    return absl::UnavailableError(
        "the request journal is not open (a write failed); it is reopened within 5 s");
  }
  *line = Line(json_text);
  const std::string out = *line + "\n";
  const int fd = file_->fd;
  const off_t before = ::lseek(fd, 0, SEEK_END);
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::write(fd, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status failed = Errno("appending to the journal");
      // A torn record would swallow the next one: cut it off, or stop using the file.
      if (before < 0 || ::ftruncate(fd, before) != 0) file_.reset();
      return failed;
    }
    done += static_cast<size_t>(n);
  }
  ++records_;
  return absl::OkStatus();
}

absl::Status RequestJournal::Submitted(const ServeRequest& r) {
  const GenerationParams& p = r.params;
  const json j = {{"op", "submit"},
                  {"id", r.id},
                  {"model", r.model_name},
                  {"created_us", absl::ToUnixMicros(r.created)},
                  {"priority", r.entry.priority},
                  {"params",
                   {{"prompt", p.prompt},
                    {"negative_prompt", p.negative_prompt},
                    {"width", p.width},
                    {"height", p.height},
                    {"frames", p.frames},
                    {"steps", p.steps},
                    {"guidance", p.guidance},
                    {"shift", p.shift},
                    {"sampler", core::params::SamplerKindName(
                                    p.sampler.value_or(core::params::SamplerKind::kUniPC))},
                    {"seed", p.seed}}},
                  {"requested", RequestedJson(r.requested)},
                  {"output", {{"kind", OutputKindName(r.output.kind)}, {"fps", r.output.fps}}}};
  std::shared_ptr<const File> file;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(r.id); it != entries_.end()) {
      // The request table forgets at the TTL too, but checks more often than Maintain runs.
      if (!Expired(it->second, absl::Now())) {
        return absl::AlreadyExistsError(
            absl::StrCat("request_id '", r.id, "' is already journaled"));
      }
      ForgetLocked(it);
    }
    std::string line;
    if (absl::Status s = AppendLocked(Dump(j), &line); !s.ok()) return s;
    entries_[r.id].submit_line = std::move(line);
    file = file_;
  }
  if (file != nullptr && ::fdatasync(file->fd) == 0) return absl::OkStatus();
  absl::Status failed = Errno("syncing the journal");
  Forget(r.id);
  return failed;
}

absl::Status RequestJournal::AppendEndLocked(const std::string& id, const std::string& json_text,
                                             const std::string& path, int64_t bytes,
                                             absl::Time finished, bool sync) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.end_line.empty()) {
    // Not journaled (forgotten meanwhile) or ended twice: keep nothing.
    if (!path.empty()) std::remove(path.c_str());
    return absl::OkStatus();
  }
  std::string line;
  if (absl::Status s = AppendLocked(json_text, &line); !s.ok()) {
    // Kept in memory and written by the next rewrite (Maintain, within seconds): an entry whose
    // end is lost would stay pending for ever, and run again after a restart.
    LV_LOG(WARNING) << "request=" << id << " " << s
                    << "; its end is kept in memory until the journal is rewritten";
    line = Line(json_text);
    dirty_ = true;
  } else if (sync && file_ != nullptr && ::fdatasync(file_->fd) != 0) {
    LV_LOG(WARNING) << "request=" << id << " " << Errno("syncing the journal");
  }
  Entry& e = it->second;
  e.end_line = std::move(line);
  e.finished = finished;
  e.result_path = path;
  e.result_bytes = bytes;
  result_bytes_ += bytes;
  return absl::OkStatus();
}

absl::StatusOr<std::string> RequestJournal::StoreDone(const ServeRequest& r,
                                                      const EncodedOutput& out,
                                                      const RequestStats& stats,
                                                      absl::Time finished) {
  json j = EndRecord(r.id, r.model_version, absl::OkStatus(), finished, stats);
  const std::string path = ResultPath(r.id);
  absl::Status stored;
  if (out.bytes() > options_.max_result_bytes) {
    stored = absl::ResourceExhaustedError(absl::StrCat(
        "the video (", out.bytes(), " bytes) is larger than all stored results may be (",
        options_.max_result_bytes, " bytes, limits.max_stored_results_mb)"));
  } else {
    stored = WriteResultFile(path, r.id, out);
  }
  int64_t bytes = 0;
  if (stored.ok()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) bytes = st.st_size;
    j["mime"] = out.mime;
    j["result"] = fs::path(path).filename().string();
    j["bytes"] = bytes;
  } else {
    // Served from memory until a restart; after one the id says what happened.
    j = EndRecord(r.id, r.model_version,
                  absl::DataLossError(
                      absl::StrCat("the video was made but could not be stored (", stored.message(),
                                   "), so it was lost at a server restart; submit it again")),
                  finished, stats);
  }
  absl::MutexLock lock(&mu_);
  absl::Status appended =
      AppendEndLocked(r.id, Dump(j), stored.ok() ? path : "", bytes, finished, /*sync=*/false);
  if (!stored.ok()) return stored;
  if (!appended.ok()) return appended;
  return path;
}

absl::Status RequestJournal::MarkCleanShutdown() {
  absl::MutexLock lock(&mu_);
  if (dirty_) {
    if (absl::Status s = RewriteLocked(); !s.ok()) return s;
  }
  std::string line;
  if (absl::Status s = AppendLocked(Dump({{"op", "shutdown"}, {"id", ""}}), &line); !s.ok()) {
    return s;
  }
  if (file_ != nullptr && ::fdatasync(file_->fd) != 0) return Errno("syncing the journal");
  return absl::OkStatus();
}

absl::Status RequestJournal::Ended(const ServeRequest& r, bool sync) {
  json j;
  absl::Time finished;
  {
    absl::MutexLock rl(&r.mu);
    if (r.phase == RequestPhase::kDone) return absl::OkStatus();  // StoreDone's
    j = EndRecord(r.id, r.model_version, r.error, r.finished, r.stats);
    finished = r.finished;
  }
  absl::MutexLock lock(&mu_);
  return AppendEndLocked(r.id, Dump(j), "", 0, finished, sync);
}

void RequestJournal::ForgetLocked(std::map<std::string, Entry>::iterator it) {
  // The forget record goes first: a crash before the file is removed then cannot make the request
  // look like a done one whose result is missing (which would run it again).
  std::string line;
  const json j = {{"op", "forget"}, {"id", it->first}};
  if (absl::Status s = AppendLocked(Dump(j), &line); !s.ok()) {
    // The next rewrite (Maintain) drops the entry; until then a crash would bring it back.
    LV_LOG(WARNING) << "journal: " << s;
    dirty_ = true;
  }
  if (!it->second.result_path.empty()) std::remove(it->second.result_path.c_str());
  result_bytes_ -= it->second.result_bytes;
  entries_.erase(it);
}

void RequestJournal::Forget(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it != entries_.end()) ForgetLocked(it);
}

std::vector<std::string> RequestJournal::Maintain(absl::Time now) {
  std::vector<std::string> forgotten;
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (Expired(it->second, now)) {
      forgotten.push_back(it->first);
      ForgetLocked(it);
    }
    it = next;
  }
  while (result_bytes_ > options_.max_result_bytes) {
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.result_bytes > 0 &&
          (oldest == entries_.end() || it->second.finished < oldest->second.finished)) {
        oldest = it;
      }
    }
    if (oldest == entries_.end()) break;
    LV_LOG(INFO) << "request=" << oldest->first << " result evicted: stored results exceed "
                 << options_.max_result_bytes << " bytes";
    forgotten.push_back(oldest->first);
    ForgetLocked(oldest);
  }
  int64_t live = 0;
  for (const auto& [id, e] : entries_) live += 1 + !e.resume_line.empty() + !e.end_line.empty();
  const bool compact = records_ - live >= options_.min_compact_records && records_ - live > live;
  if (file_ == nullptr || compact || dirty_) {
    if (absl::Status s = RewriteLocked(); !s.ok()) LV_LOG(WARNING) << "journal compaction: " << s;
  }
  return forgotten;
}

RequestJournal::Usage RequestJournal::usage() const {
  absl::MutexLock lock(&mu_);
  Usage u;
  u.live = static_cast<int64_t>(entries_.size());
  u.records = records_;
  u.result_bytes = result_bytes_;
  for (const auto& [id, e] : entries_) u.results += e.result_path.empty() ? 0 : 1;
  return u;
}

}  // namespace linvideo::server
