#pragma once
// RequestJournal: what makes Submit'ed requests survive a crash or restart (state_dir).
//
// On disk, under the state folder:
//   journal    append-only; one record per line, "<crc32 hex> <json>\n". A "submit" record (the
//              request's resolved parameters) is written and fsync'ed before Submit answers; an
//              "end" record (done / failed / cancelled, the stats and where the result is) when the
//              request ends. A torn or corrupt line (bad checksum) is skipped with a warning.
//   results/   one file per finished request, <id>.result: the encoded output framed with its
//              length and a CRC-32, written to a temp file, fsync'ed and renamed, so a result that
//              is found is whole, and one that fails its check is never served.
// Open() replays the journal: ended requests come back with their stored result until their TTL;
// requests without an end record (queued or running when the server died), or whose result file
// is missing or damaged, come back as "pending" so the engine runs them again (same seed: same
// video). Maintain() forgets results past their TTL, evicts the oldest beyond the size cap, and
// rewrites the journal when most of its records are dead (compaction: atomic replace).
// Streaming Generate calls are not journaled: their client is gone when the server is.
//
// Durability: submit records are fsync'ed (an acknowledged Submit survives power loss); end records
// are written without fsync by the engine thread (they survive a process kill, not a power cut, in
// which case the request runs again). Thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/output_format.h"
#include "server/request.h"

namespace linvideo::server {

struct JournalOptions {
  std::string dir;
  absl::Duration result_ttl = absl::Seconds(600);
  int64_t max_result_bytes = int64_t{1} << 30;  // results kept on disk, all requests together
  int min_compact_records = 1000;               // rewrite only once this many records are dead
};

// A Submit'ed request found in the journal when the server starts.
struct RecoveredRequest {
  std::string id;
  std::string model;        // the model name it was submitted to
  GenerationParams params;  // resolved at submit time
  OutputFormat output;      // resolved
  int priority = 1;
  absl::Time created;
  bool ended = false;  // false: queued or running when the server stopped: run it again
  // When ended:
  absl::Status status;  // OK: done; otherwise why it failed or was cancelled
  int64_t model_version = 0;
  absl::Time finished;
  RequestStats stats;
  std::string mime;
  std::string result_path;  // done: the stored result (LoadStoredResult)
};

class RequestJournal {
 public:
  // Creates the folder if needed, replays and compacts the journal. `recovered` gets every request
  // still worth knowing (ended within the TTL, or pending). FAILED_PRECONDITION when the folder
  // cannot be created or written.
  static absl::StatusOr<std::unique_ptr<RequestJournal>> Open(
      const JournalOptions& options, std::vector<RecoveredRequest>* recovered);
  ~RequestJournal();
  RequestJournal(const RequestJournal&) = delete;
  RequestJournal& operator=(const RequestJournal&) = delete;

  // Records a Submit'ed request (resolved params, model, output, priority); fsync'ed on return.
  absl::Status Submitted(const ServeRequest& r) ABSL_LOCKS_EXCLUDED(mu_);
  // Records the end of a request `r` (terminal). A done request's result is stored first
  // (fsync'ed); returns its path ("" when there is none). `sync`: fsync the journal too. Caller
  // must not hold r.mu.
  absl::StatusOr<std::string> Ended(const ServeRequest& r, bool sync) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops a request that was journaled but not accepted after all (its Submit failed), or whose
  // result is gone; removes its stored result.
  void Forget(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets results past their TTL and the oldest beyond the size cap (their files are removed),
  // compacts the journal when worthwhile; returns the ids it forgot.
  std::vector<std::string> Maintain(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  struct Usage {
    int64_t live = 0;          // requests the journal knows
    int64_t records = 0;       // lines in the journal file
    int64_t results = 0;       // stored results
    int64_t result_bytes = 0;  // their size on disk
  };
  Usage usage() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::string submit_line, end_line;  // the records as written (end_line empty: not ended)
    absl::Time finished = absl::InfiniteFuture();
    std::string result_path;
    int64_t result_bytes = 0;
  };
  explicit RequestJournal(JournalOptions options) : options_(std::move(options)) {}
  absl::Status Replay(std::vector<RecoveredRequest>* recovered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AppendLocked(const std::string& json, bool sync, std::string* line)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RewriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetLocked(std::map<std::string, Entry>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string JournalPath() const { return options_.dir + "/journal"; }
  std::string ResultPath(const std::string& id) const;

  const JournalOptions options_;
  mutable absl::Mutex mu_;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t result_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Reads a stored result; DATA_LOSS when it is damaged, NOT_FOUND when it was removed (TTL, cap).
absl::StatusOr<EncodedOutput> LoadStoredResult(const std::string& path);

}  // namespace linvideo::server
