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
// video) — at most kMaxRecoveries unclean exits in a row (a "resume" record counts them; a
// graceful stop ends the journal with a "shutdown" record, MarkCleanShutdown, and is not counted:
// a request that never ran cannot have crashed the server). Maintain()
// forgets results past their TTL, evicts the oldest beyond the size cap, and rewrites the journal
// when most of its records are dead (compaction: atomic replace).
// Streaming Generate calls are not journaled: their client is gone when the server is.
//
// Durability: submit records are fsync'ed (an acknowledged Submit survives power loss), and a done
// request's result and end record are written before it shows as done; end records are not
// fsync'ed (they survive a process kill, not a power cut, after which the request runs again).
// Thread-safe; fsyncs happen outside the lock.

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
  // What the client asked for (unset fields take the serving checkpoint's defaults), which a
  // restart resolves again like Engine::MoveQueued; the resolved `params` for records written
  // before the journal kept it.
  GenerationParams requested;
  OutputFormat output;  // resolved
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
  // A request still pending after this many unclean exits in a row ends INTERNAL instead of
  // running again: one that crashes the server must not crash it at every start.
  static constexpr int kMaxRecoveries = 3;

  // Creates the folder if needed, replays and compacts the journal. `recovered` gets every request
  // still worth knowing (ended within the TTL, or pending). FAILED_PRECONDITION when the folder
  // cannot be created or written.
  static absl::StatusOr<std::unique_ptr<RequestJournal>> Open(
      const JournalOptions& options, std::vector<RecoveredRequest>* recovered);
  RequestJournal(const RequestJournal&) = delete;
  RequestJournal& operator=(const RequestJournal&) = delete;

  // Records a Submit'ed request (resolved params, model, output, priority); fsync'ed on return
  // (outside the journal's lock). ALREADY_EXISTS when the id is journaled and not expired; on any
  // error nothing stays journaled.
  absl::Status Submitted(const ServeRequest& r) ABSL_LOCKS_EXCLUDED(mu_);
  // A request that finished with `out`: stores it (atomic, fsync'ed) and appends its end record,
  // before the request is published as done, so a client never sees DONE for a result a crash
  // could lose. Returns the stored path. When it cannot be stored (disk full, larger than the
  // cap) the end record says so (DATA_LOSS after a restart) and the error is returned: the caller
  // keeps the result in memory.
  absl::StatusOr<std::string> StoreDone(const ServeRequest& r, const EncodedOutput& out,
                                        const RequestStats& stats, absl::Time finished)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records the end of a request that ended without a result (failed, cancelled; a done one was
  // recorded by StoreDone). `sync`: fsync the journal too. Caller must not hold r.mu.
  absl::Status Ended(const ServeRequest& r, bool sync) ABSL_LOCKS_EXCLUDED(mu_);
  // The server stops gracefully: appends (fsync'ed) the "shutdown" record after which nothing
  // more is written, so the next Open does not count the pending requests' restart against
  // kMaxRecoveries.
  absl::Status MarkCleanShutdown() ABSL_LOCKS_EXCLUDED(mu_);
  // Drops a request that was journaled but not accepted after all (its Submit failed); removes
  // its stored result if any.
  void Forget(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets results past their TTL and the oldest beyond the size cap (their files are removed),
  // compacts the journal when worthwhile (or reopens it after a failed write); returns the ids it
  // forgot.
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
    // The records as written (end_line empty: not ended; resume_line: restarts it was pending at).
    std::string submit_line, resume_line, end_line;
    int recoveries = 0;
    absl::Time finished = absl::InfiniteFuture();
    std::string result_path;
    int64_t result_bytes = 0;
  };
  // The open journal file; shared so that a Submit can fsync outside the lock while compaction
  // swaps the file.
  struct File {
    explicit File(int fd) : fd(fd) {}
    ~File();
    const int fd;
  };
  explicit RequestJournal(JournalOptions options) : options_(std::move(options)) {}
  absl::Status Replay(std::vector<RecoveredRequest>* recovered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Appends one record (not synced). A failed write is cut back off the file; if even that fails
  // the file is closed, refusing Submits until Maintain reopens it.
  absl::Status AppendLocked(const std::string& json, std::string* line)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status AppendEndLocked(const std::string& id, const std::string& json,
                               const std::string& path, int64_t bytes, absl::Time finished,
                               bool sync) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RewriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetLocked(std::map<std::string, Entry>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ended more than the result TTL before `now`.
  bool Expired(const Entry& e, absl::Time now) const {
    return !e.end_line.empty() && now - e.finished > options_.result_ttl;
  }
  std::string JournalPath() const { return options_.dir + "/journal"; }
  std::string ResultPath(const std::string& id) const;

  const JournalOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const File> file_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t records_ ABSL_GUARDED_BY(mu_) = 0;
  // An end or forget record could not be appended: `entries_` is ahead of the file until the next
  // RewriteLocked (Maintain does it).
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  int64_t result_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// Reads the stored result of request `id`; DATA_LOSS when it is damaged or another request's,
// NOT_FOUND when it was removed (TTL, cap).
absl::StatusOr<EncodedOutput> LoadStoredResult(const std::string& path, const std::string& id);

}  // namespace linvideo::server
