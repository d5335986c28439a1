// Job specs from arbitrary bytes (server/job_spec.h). The first byte picks the form: a
// linvideo.v1.JobSpec as StartJob receives it (proto bytes -> FromProto -> ValidateJobSpec), the
// spec.json / job.json a restarted server reads back (SpecFromJson, SnapshotFromJson), or a
// jobs.cpus list. Invariants: nothing throws; a valid spec survives SpecToJson -> SpecFromJson
// unchanged and still validates.
#include "core/io/json_file.h"
#include "server/job_spec.h"
#include "server/proto_convert.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/quiet_protobuf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using linvideo::fuzz::Check;
  namespace s = linvideo::server;
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  linvideo::server::JobSpec spec;
  switch (data[0] % 4) {
    case 0: {
      linvideo::v1::JobSpec proto;
      if (!proto.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) return 0;
      spec = s::FromProto(proto);
      break;
    }
    case 1: {
      auto json = linvideo::core::io::ParseJson(rest, "spec.json");
      if (!json.ok()) return 0;
      auto parsed = s::SpecFromJson(*json);
      if (!parsed.ok()) return 0;
      spec = *parsed;
      break;
    }
    case 2: {
      auto json = linvideo::core::io::ParseJson(rest, "job.json");
      if (json.ok()) {
        auto job = s::SnapshotFromJson(*json);
        if (job.ok()) (void)s::SnapshotToJson(*job).dump();
      }
      return 0;
    }
    default: {
      auto cpus = s::ParseCpuList(std::string(rest));
      if (cpus.ok()) {
        for (int c : *cpus) Check(c >= 0, "a parsed cpu list holds a negative cpu");
      }
      return 0;
    }
  }
  if (!s::ValidateJobSpec(spec).ok()) return 0;
  const nlohmann::json j = s::SpecToJson(spec);
  auto back = s::SpecFromJson(j);
  Check(back.ok(), "a valid spec does not read back from its own JSON");
  Check(s::SpecToJson(*back) == j, "a valid spec changes through its JSON");
  Check(s::ValidateJobSpec(*back).ok(), "a valid spec stops validating after its JSON");
  return 0;
}
