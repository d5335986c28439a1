// RequestTable: ids, and how long and how many ended requests are kept (TTL, then the oldest
// beyond a count or beyond a size of results held in memory).
#include "server/request_table.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "absl/strings/match.h"

namespace linvideo::server {
namespace {

std::shared_ptr<ServeRequest> Ended(const std::string& id, absl::Time finished, int64_t bytes,
                                    bool on_disk = false) {
  auto r = std::make_shared<ServeRequest>();
  r->id = id;
  absl::MutexLock l(&r->mu);
  r->phase = RequestPhase::kDone;
  r->finished = finished;
  auto out = std::make_shared<EncodedOutput>();
  out->mime = "video/mp4";
  if (on_disk) {
    r->result_file = "/state/results/" + id + ".result";  // memory keeps the MIME type only
  } else {
    out->blobs = {std::string(static_cast<size_t>(bytes), 'v')};
  }
  r->result = std::move(out);
  return r;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(RequestTableTest, EndedRequestsGoAfterTheirTtlThenTheOldestBeyondTheCaps) {
  const absl::Time t0 = absl::FromUnixSeconds(1000000);
  RequestTable table;
  auto running = std::make_shared<ServeRequest>();
  running->id = "running";
  ASSERT_TRUE(table.Insert(running));
  // Finished at t0 + i seconds, 100 bytes each; "d" is on disk (no bytes in memory).
  int i = 0;
  for (const char* id : {"a", "b", "c", "d", "e"}) {
    ASSERT_TRUE(table.Insert(Ended(id, t0 + absl::Seconds(i++), 100, std::string(id) == "d")));
  }
  EXPECT_FALSE(table.Insert(Ended("a", t0, 1))) << "an id is taken once";

  RequestTable::Retention keep;
  keep.ttl = absl::Seconds(10);
  EXPECT_TRUE(table.Expire(t0 + absl::Seconds(5), keep).evicted.empty());
  EXPECT_EQ(table.size(), 6);

  // The TTL: "a" ended 10.5 s ago; expired ids are not reported as evicted.
  RequestTable::Expired e = table.Expire(t0 + absl::Seconds(10.5), keep);
  EXPECT_TRUE(e.evicted.empty());
  EXPECT_EQ(e.ended, 4);
  EXPECT_EQ(e.result_bytes, 300);
  EXPECT_EQ(table.Find("a"), nullptr);
  EXPECT_EQ(table.size(), 5);

  // At most 3 ended: the oldest go first ("b"); the running request is never counted.
  keep.max_ended = 3;
  e = table.Expire(t0 + absl::Seconds(10.5), keep);
  EXPECT_EQ(e.evicted, std::vector<std::string>{"b"});
  EXPECT_EQ(e.ended, 3);
  EXPECT_EQ(e.result_bytes, 200);
  EXPECT_NE(table.Find("running"), nullptr);
  EXPECT_EQ(table.size(), 4);

  // At most 150 bytes of results in memory: c and e hold 200, d none (on disk); the oldest in
  // finishing order go until it fits: c (then 100 bytes), and d is kept.
  keep.max_result_bytes = 150;
  e = table.Expire(t0 + absl::Seconds(10.5), keep);
  EXPECT_EQ(e.evicted, std::vector<std::string>{"c"});
  EXPECT_EQ(e.result_bytes, 100);
  EXPECT_NE(table.Find("d"), nullptr);
  EXPECT_NE(table.Find("e"), nullptr);

  // Both caps together.
  keep.max_ended = 0;
  EXPECT_EQ(Sorted(table.Expire(t0 + absl::Seconds(10.5), keep).evicted),
            (std::vector<std::string>{"d", "e"}));
  EXPECT_EQ(table.size(), 1);
  EXPECT_NE(table.Find("running"), nullptr);
}

TEST(RequestTableTest, IdsAreCheckedAndFreshOnesCarryTheReplicaSuffix) {
  EXPECT_TRUE(RequestTable::ValidateId("job-1_a.b").ok());
  for (const std::string bad :
       {std::string(), std::string(65, 'x'), std::string("a b"), std::string("a/b")}) {
    absl::Status s = RequestTable::ValidateId(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("[A-Za-z0-9._-]"), std::string::npos) << s;
  }
  RequestTable table;
  const std::string a = table.NewId(), b = table.NewId();
  EXPECT_NE(a, b);
  EXPECT_EQ(a[0], 'r');
  table.set_id_suffix("10.0.0.1_50051");
  EXPECT_TRUE(absl::EndsWith(table.NewId(), ".10.0.0.1_50051"));
}

}  // namespace
}  // namespace linvideo::server
