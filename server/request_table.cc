#include "server/request_table.h"

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

void RequestTable::Expire(absl::Time now, absl::Duration ttl) {
  for (auto it = requests_.begin(); it != requests_.end();) {
    ServeRequest& r = *it->second;
    bool expired;
    {
      absl::MutexLock rl(&r.mu);
      expired = r.Terminal() && now - r.finished > ttl;
    }
    it = expired ? requests_.erase(it) : std::next(it);
  }
}

}  // namespace linvideo::server
