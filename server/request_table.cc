#include "server/request_table.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace linvideo::server {

absl::Status RequestTable::ValidateId(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 64;
  for (char c : id) {
    ok = ok &&
         (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "request_id '", id, "' is not allowed: use 1-64 characters from [A-Za-z0-9._-]"));
}

std::string RequestTable::NewId() {
  return absl::StrCat("r", absl::ToUnixMicros(absl::Now()), "-", next_id_++,
                      id_suffix_.empty() ? "" : ".", id_suffix_);
}

std::shared_ptr<ServeRequest> RequestTable::Find(const std::string& id) const {
  auto it = requests_.find(id);
  return it == requests_.end() ? nullptr : it->second;
}

bool RequestTable::Insert(const std::shared_ptr<ServeRequest>& r) {
  if (!requests_.emplace(r->id, r).second) return false;
  r->entry.owner = r.get();
  return true;
}

RequestTable::Expired RequestTable::Expire(absl::Time now, const Retention& keep) {
  struct Ended {
    absl::Time finished;
    int64_t bytes;  // its result's, when held in memory
    std::map<std::string, std::shared_ptr<ServeRequest>>::iterator it;
  };
  std::vector<Ended> ended;
  int64_t bytes = 0;
  for (auto it = requests_.begin(); it != requests_.end();) {
    ServeRequest& r = *it->second;
    bool expired = false;
    {
      absl::MutexLock rl(&r.mu);
      if (r.Terminal()) {
        expired = now - r.finished > keep.ttl;
        if (!expired) {
          const int64_t b = r.result != nullptr && r.result_file.empty() ? r.result->bytes() : 0;
          ended.push_back({r.finished, b, it});
          bytes += b;
        }
      }
    }
    // Erased outside r.mu: the table may hold the last reference.
    it = expired ? requests_.erase(it) : std::next(it);
  }
  Expired out;
  out.ended = static_cast<int64_t>(ended.size());
  out.result_bytes = bytes;
  if (out.ended <= keep.max_ended && out.result_bytes <= keep.max_result_bytes) return out;
  std::sort(ended.begin(), ended.end(),
            [](const Ended& a, const Ended& b) { return a.finished < b.finished; });
  for (const Ended& e : ended) {
    if (out.ended <= keep.max_ended && out.result_bytes <= keep.max_result_bytes) break;
    out.evicted.push_back(e.it->first);
    requests_.erase(e.it);
    --out.ended;
    out.result_bytes -= e.bytes;
  }
  return out;
}

}  // namespace linvideo::server
