#include "core/train/data_parallel.h"

#include <exception>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

// c10d's Gloo process group is compiled into Debian's libtorch_cpu and PyTorch's wheels; its header
// is only usable with USE_C10D_GLOO and the gloo headers (Debian: libgloo-dev). CMake sets
// LINVIDEO_HAS_GLOO when both are found (cmake/dependencies.cmake).
#if LINVIDEO_HAS_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace linvideo::core::train {

namespace {

// A non-negative integer variable; `fallback` when unset.
absl::StatusOr<int> IntVar(const std::function<const char*(const char*)>& getenv, const char* name,
                           int fallback) {
  const char* value = getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  int out = 0;
  if (!absl::SimpleAtoi(value, &out) || out < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "='", value, "' is not a non-negative integer"));
  }
  return out;
}

}  // namespace

absl::StatusOr<ParallelEnv> ParseParallelEnv(
    const std::function<const char*(const char*)>& getenv) {
  ParallelEnv env;
  auto world = IntVar(getenv, "WORLD_SIZE", 1);
  if (!world.ok()) return world.status();
  env.world_size = *world;
  if (env.world_size < 1) {
    return absl::InvalidArgumentError("WORLD_SIZE=0: the number of processes must be >= 1");
  }
  auto rank = IntVar(getenv, "RANK", 0);
  if (!rank.ok()) return rank.status();
  env.rank = *rank;
  if (env.rank >= env.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("RANK=", env.rank,
                                                   " is not below WORLD_SIZE=", env.world_size,
                                                   " (ranks are 0..", env.world_size - 1, ")"));
  }
  auto local = IntVar(getenv, "LOCAL_RANK", env.rank);
  if (!local.ok()) return local.status();
  env.local_rank = *local;
  if (env.world_size == 1) return env;
  const char* addr = getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0') {
    return absl::InvalidArgumentError(absl::StrCat(
        "WORLD_SIZE=", env.world_size,
        " needs MASTER_ADDR (the host of rank 0, e.g. 127.0.0.1 or a headless Service name)"));
  }
  env.master_addr = addr;
  auto port = IntVar(getenv, "MASTER_PORT", -1);
  if (!port.ok()) return port.status();
  if (*port < 1 || *port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WORLD_SIZE=", env.world_size, " needs MASTER_PORT in 1..65535 (rank 0's rendezvous port)",
        *port < 0 ? "; it is unset" : absl::StrCat("; got ", *port)));
  }
  env.master_port = *port;
  return env;
}

struct DataParallel::Group {
#if LINVIDEO_HAS_GLOO
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
#endif
};

DataParallel::~DataParallel() = default;

namespace {
DataParallel* g_group = nullptr;  // set once by Init (or Get), never freed: lives as long as main
bool g_initialised = false;
}  // namespace

DataParallel& DataParallel::Get() {
  if (g_group == nullptr) g_group = new DataParallel();
  return *g_group;
}

absl::Status DataParallel::Init(const ParallelEnv& env, std::chrono::milliseconds timeout) {
  if (g_initialised) {
    return absl::FailedPreconditionError("DataParallel::Init was already called in this process");
  }
  DataParallel& self = Get();
  if (env.world_size <= 1) {
    self.env_ = env;
    g_initialised = true;
    return absl::OkStatus();
  }
#if LINVIDEO_HAS_GLOO
  try {
    auto group = std::make_unique<Group>();
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(env.master_port);
    store_options.isServer = env.rank == 0;
    store_options.numWorkers = static_cast<size_t>(env.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    group->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Gloo's transport binds to the address this host's name resolves to (loopback when it does
    // not resolve), which is what a pod or a single machine needs.
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(group->store, env.rank, env.world_size,
                                                            options);
    self.env_ = env;
    self.group_ = std::move(group);
    g_initialised = true;
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", env.rank, " of ", env.world_size,
                                               ": cannot join the group at ", env.master_addr, ":",
                                               env.master_port, ": ", e.what()));
  }
  return self.Barrier();
#else
  (void)timeout;
  return absl::UnimplementedError(absl::StrCat(
      "WORLD_SIZE=", env.world_size,
      ": this build has no Gloo process group (install libgloo-dev and rebuild), so it trains in "
      "one process only"));
#endif
}

absl::StatusOr<Shard> DataParallel::ShardOf(int64_t batch, absl::string_view what) const {
  if (batch % env_.world_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, "=", batch, " is the combined batch of all ", env_.world_size,
                     " processes and must be a multiple of WORLD_SIZE=", env_.world_size));
  }
  const int64_t count = batch / env_.world_size;
  return Shard{count * env_.rank, count};
}

torch::Tensor ShardRandn(const torch::Tensor& like, int64_t combined_rows, const Shard& shard,
                         at::Generator& gen) {
  std::vector<int64_t> sizes = like.sizes().vec();
  sizes[0] = combined_rows;
  return at::randn(sizes, gen, like.options()).narrow(0, shard.begin, shard.count);
}

absl::StatusOr<torch::Tensor> DataParallel::AllReduce(torch::Tensor t, bool max) const {
  if (!distributed()) return t;
#if LINVIDEO_HAS_GLOO
  try {
    std::vector<at::Tensor> tensors = {t};
    c10d::AllreduceOptions options;
    options.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    group_->pg->allreduce(tensors, options)->wait();
    return tensors[0];
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("rank ", env_.rank, " of ", env_.world_size,
                     ": all-reduce failed (a process of the group died or timed out): ", e.what()));
  }
#else
  (void)max;
  return absl::InternalError("distributed without Gloo");  // Init refuses this
#endif
}

absl::Status DataParallel::AverageGradients(const std::vector<torch::Tensor>& params) const {
  if (!distributed()) return absl::OkStatus();
  std::vector<torch::Tensor> grads;
  int64_t total = 0;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) {
      grads.push_back(p.grad());
      total += p.grad().numel();
    }
  }
  if (grads.empty()) return absl::OkStatus();
  // One flat buffer: Gloo's ring all-reduce is bandwidth-bound, and one call has one latency.
  torch::Tensor flat = torch::empty({total}, torch::dtype(torch::kFloat));
  int64_t offset = 0;
  for (const torch::Tensor& g : grads) {
    flat.narrow(0, offset, g.numel()).copy_(g.reshape({-1}));
    offset += g.numel();
  }
  auto reduced = AllReduce(flat, /*max=*/false);
  if (!reduced.ok()) return reduced.status();
  reduced->div_(static_cast<double>(env_.world_size));
  offset = 0;
  torch::NoGradGuard no_grad;
  for (torch::Tensor& g : grads) {
    g.copy_(reduced->narrow(0, offset, g.numel()).view(g.sizes()));
    offset += g.numel();
  }
  return absl::OkStatus();
}

absl::StatusOr<double> DataParallel::GlobalSum(double value) const {
  if (!distributed()) return value;
  auto reduced = AllReduce(torch::tensor({value}, torch::kDouble), /*max=*/false);
  if (!reduced.ok()) return reduced.status();
  return (*reduced)[0].item<double>();
}

absl::StatusOr<double> DataParallel::GlobalMean(double value) const {
  auto sum = GlobalSum(value);
  if (!sum.ok()) return sum.status();
  return *sum / static_cast<double>(env_.world_size);
}

absl::Status DataParallel::CheckSame(double value, absl::string_view what) const {
  if (!distributed()) return absl::OkStatus();
  // max(v) and max(-v) = -min(v) in one call.
  auto reduced = AllReduce(torch::tensor({value, -value}, torch::kDouble), /*max=*/true);
  if (!reduced.ok()) return reduced.status();
  const double hi = (*reduced)[0].item<double>(), lo = -(*reduced)[1].item<double>();
  if (hi != lo) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", env_.world_size, " processes disagree on ", what, " (from ", lo, " to ", hi,
        "; this rank ", env_.rank, ": ", value,
        "): every rank must read the same checkpoint, so the work directory must be shared"));
  }
  return absl::OkStatus();
}

double DataParallel::ParameterChecksum(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  // An integer sum of the fp32 bit patterns: exact and order-independent, so ranks with other
  // thread counts agree whenever their weights are bit-identical.
  int64_t sum = 0;
  for (const torch::Tensor& t : tensors) {
    const torch::Tensor bits =
        t.detach().to(torch::kCPU, torch::kFloat).contiguous().view(torch::kInt).to(torch::kLong);
    sum += bits.sum().item<int64_t>();
  }
  return static_cast<double>(sum);
}

absl::Status DataParallel::Barrier() const {
  // An all-reduce rather than c10d's barrier: the same failure path and message as the training
  // collectives, and Gloo's barrier is an all-reduce of its own anyway.
  auto done = AllReduce(torch::zeros({1}, torch::kFloat), /*max=*/false);
  return done.ok() ? absl::OkStatus() : done.status();
}

}  // namespace linvideo::core::train
