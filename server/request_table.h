#pragma once
// RequestTable: every request the server knows, by id, from Submit until its result expires
// (limits.result_ttl_s after it ended), and the way back from a scheduler plan to the requests.
// Thread-compatible: the engine calls it under its lock.

#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/request.h"

namespace linvideo::server {

class RequestTable {
 public:
  // OK for a client-chosen id of 1-64 characters from [A-Za-z0-9._-]; INVALID_ARGUMENT otherwise.
  static absl::Status ValidateId(const std::string& id);
  // A fresh server-chosen id.
  std::string NewId();
  // Appended to every new id after a '.' (the replica that holds it, replica_router.h); empty:
  // none.
  void set_id_suffix(std::string suffix) { id_suffix_ = std::move(suffix); }

  std::shared_ptr<ServeRequest> Find(const std::string& id) const;
  // Adds `r` under r->id and points its scheduler entry back at it. False when the id is taken.
  bool Insert(const std::shared_ptr<ServeRequest>& r);
  void Erase(const std::string& id) { requests_.erase(id); }
  // The request a scheduler entry belongs to (the entry's owner; no lookup).
  static ServeRequest& Of(const SchedEntry* entry) {
    return *static_cast<ServeRequest*>(entry->owner);
  }
  // How long and how many ended requests are kept.
  struct Retention {
    absl::Duration ttl = absl::InfiniteDuration();  // after the request ended
    int64_t max_ended = std::numeric_limits<int64_t>::max();
    // Results held in memory (those not moved to the state folder), all requests together.
    int64_t max_result_bytes = std::numeric_limits<int64_t>::max();
  };
  struct Expired {
    // Forgotten before their TTL (the journal forgets them too, so that they answer NOT_FOUND
    // like expired ones across a restart).
    std::vector<std::string> evicted;
    int64_t ended = 0;         // ended requests left
    int64_t result_bytes = 0;  // their results held in memory
  };
  // Forgets requests that ended more than `keep.ttl` before `now`, then the oldest ended ones
  // while more than `keep.max_ended` remain or their in-memory results exceed
  // `keep.max_result_bytes`.
  Expired Expire(absl::Time now, const Retention& keep);
  int64_t size() const { return static_cast<int64_t>(requests_.size()); }

 private:
  std::map<std::string, std::shared_ptr<ServeRequest>> requests_;
  uint64_t next_id_ = 1;
  std::string id_suffix_;
};

}  // namespace linvideo::server
