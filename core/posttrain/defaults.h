#pragma once
// Defaults of the post-training tools that the server must know without linking them: a job
// that leaves `batch` unset trains with these, and with jobs.processes > 1 data-parallel ranks
// the batch must split evenly (server/job_manager.cc checks it when the job is started, not when
// the stage fails). Header-only: no torch.

#include <cstdint>

namespace linvideo::core::posttrain {

inline constexpr int64_t kDefaultConvertBatch = 4;  // ConvertOptions::batch
inline constexpr int64_t kDefaultDistillBatch = 2;  // DistillOptions::batch

}  // namespace linvideo::core::posttrain
