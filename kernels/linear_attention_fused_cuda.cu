// Fused Hedgehog linear attention for CUDA (see linear_attention_fused_cuda.h for the algorithm).
// Plain CUDA C++ (no LibTorch headers) so it compiles with nvcc on machines without a CUDA
// LibTorch.

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "kernels/cuda_warp.cuh"
#include "kernels/linear_attention_fused_cuda.h"

namespace linvideo::kernels::cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kTile = 16;      // tokens per shared-memory tile

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}

// Shared-memory scratch of one tile.
template <int D>
struct TileSmem {
  float x[kTile][D];        // input rows (fp32)
  float z[kTile][D];        // x·W̃
  float phi[kTile][2 * D];  // [softmax(z), softmax(−z)]; zero rows past the end
};

// φ of tokens [n0, n0 + kTile) of one (batch, head): x points at token 0 of that head, consecutive
// tokens are `token_stride` elements apart; w is the head's [D, D] fp32 matrix. Ends synchronised.
template <typename T, int D>
__device__ void FeatureMapTile(const T* __restrict__ x, int64_t token_stride, int64_t n0, int64_t n,
                               const float* __restrict__ w, TileSmem<D>& s) {
  constexpr int kGroups = kThreads / D;  // thread groups over tokens
  constexpr int kRows = kTile / kGroups;
  const int tid = threadIdx.x;
  for (int e = tid; e < kTile * D; e += kThreads) {
    const int t = e / D, i = e % D;
    const int64_t tok = n0 + t;
    s.x[t][i] = tok < n ? ToFloat(x[tok * token_stride + i]) : 0.f;
  }
  __syncthreads();
  // z[t][j] = Σ_i x[t][i]·W̃[i][j]: lanes own consecutive j (coalesced W̃ loads, broadcast x reads).
  const int j = tid % D, g = tid / D;
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.f;
  for (int i = 0; i < D; ++i) {
    const float wij = __ldg(w + i * D + j);
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += s.x[g + r * kGroups][i] * wij;
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) s.z[g + r * kGroups][j] = acc[r];
  __syncthreads();
  // One warp per row: max / min for stability, then both normalised exponentials.
  const int warp = tid / 32, lane = tid % 32;
  for (int t = warp; t < kTile; t += kThreads / 32) {
    if (n0 + t >= n) {
      for (int f = lane; f < 2 * D; f += 32) s.phi[t][f] = 0.f;
      continue;
    }
    float mx = -INFINITY, mn = INFINITY;
    for (int c = lane; c < D; c += 32) {
      mx = fmaxf(mx, s.z[t][c]);
      mn = fminf(mn, s.z[t][c]);
    }
    mx = WarpMax(mx);
    mn = WarpMin(mn);
    float sp = 0.f, sn = 0.f;
    for (int c = lane; c < D; c += 32) {
      const float ep = __expf(s.z[t][c] - mx), en = __expf(mn - s.z[t][c]);
      s.phi[t][c] = ep;
      s.phi[t][D + c] = en;
      sp += ep;
      sn += en;
    }
    const float ip = 1.f / WarpSum(sp), in = 1.f / WarpSum(sn);
    for (int c = lane; c < D; c += 32) {
      s.phi[t][c] *= ip;
      s.phi[t][D + c] *= in;
    }
  }
  __syncthreads();
}

// Pass 1: state[bh] += Σ_j φ(k_j)ᵀ v_j, ksum[bh] += Σ_j φ(k_j) over this block's token range.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    KvStateKernel(const T* __restrict__ k, const T* __restrict__ v, const float* __restrict__ w_k,
                  float* __restrict__ state, float* __restrict__ ksum, int64_t nk, int heads,
                  int64_t rows_per_split) {
  __shared__ TileSmem<D> s;
  __shared__ float vs[kTile][D];
  constexpr int kGroups = kThreads / D;
  constexpr int kFeat = 2 * D / kGroups;  // features per thread
  const int bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const int64_t token_stride = static_cast<int64_t>(heads) * D;
  const int64_t base = (static_cast<int64_t>(b) * nk * heads + h) * D;
  const T* kb = k + base;
  const T* vb = v + base;
  const float* w = w_k + static_cast<int64_t>(h) * D * D;
  const int tid = threadIdx.x, d = tid % D, g = tid / D;
  const int64_t begin = blockIdx.x * rows_per_split;
  const int64_t end = min(nk, begin + rows_per_split);

  float acc[kFeat];
#pragma unroll
  for (int i = 0; i < kFeat; ++i) acc[i] = 0.f;
  float kacc = 0.f;  // Σφ for feature `tid` (tid < 2D)

  for (int64_t n0 = begin; n0 < end; n0 += kTile) {
    FeatureMapTile<T, D>(kb, token_stride, n0, end, w, s);
    for (int e = tid; e < kTile * D; e += kThreads) {
      const int t = e / D, c = e % D;
      vs[t][c] = n0 + t < end ? ToFloat(vb[(n0 + t) * token_stride + c]) : 0.f;
    }
    __syncthreads();
    float vr[kTile];
#pragma unroll
    for (int t = 0; t < kTile; ++t) vr[t] = vs[t][d];
#pragma unroll
    for (int i = 0; i < kFeat; ++i) {
      const int f = g + i * kGroups;
#pragma unroll
      for (int t = 0; t < kTile; ++t) acc[i] += s.phi[t][f] * vr[t];
    }
    if (tid < 2 * D) {
#pragma unroll
      for (int t = 0; t < kTile; ++t) kacc += s.phi[t][tid];
    }
    __syncthreads();  // before the next tile overwrites the scratch
  }
  float* sb = state + static_cast<int64_t>(bh) * 2 * D * D;
#pragma unroll
  for (int i = 0; i < kFeat; ++i) atomicAdd(sb + (g + i * kGroups) * D + d, acc[i]);
  if (tid < 2 * D) atomicAdd(ksum + static_cast<int64_t>(bh) * 2 * D + tid, kacc);
}

// Pass 2: o = φ(q)·S / (φ(q)·Σφ(k) + eps) for one tile of query tokens.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads)
    OutputKernel(const T* __restrict__ q, const float* __restrict__ w_q,
                 const float* __restrict__ state, const float* __restrict__ ksum,
                 T* __restrict__ out, int64_t nq, int heads, float eps) {
  __shared__ TileSmem<D> s;
  __shared__ float den[kTile];
  constexpr int kGroups = kThreads / D;
  constexpr int kRows = kTile / kGroups;
  const int bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const int64_t token_stride = static_cast<int64_t>(heads) * D;
  const int64_t base = (static_cast<int64_t>(b) * nq * heads + h) * D;
  const float* sb = state + static_cast<int64_t>(bh) * 2 * D * D;
  const float* zb = ksum + static_cast<int64_t>(bh) * 2 * D;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  FeatureMapTile<T, D>(q + base, token_stride, n0, nq, w_q + static_cast<int64_t>(h) * D * D, s);

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  for (int t = warp; t < kTile; t += kThreads / 32) {
    float p = 0.f;
    for (int f = lane; f < 2 * D; f += 32) p += s.phi[t][f] * zb[f];
    p = WarpSum(p);
    if (lane == 0) den[t] = p + eps;
  }
  __syncthreads();

  const int d = tid % D, g = tid / D;
  float acc[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) acc[r] = 0.f;
  for (int f = 0; f < 2 * D; ++f) {
    const float sv = __ldg(sb + f * D + d);
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] += s.phi[g + r * kGroups][f] * sv;
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int t = g + r * kGroups;
    if (n0 + t < nq) out[base + (n0 + t) * token_stride + d] = FromFloat<T>(acc[r] / den[t]);
  }
}

template <typename T, int D>
cudaError_t Launch(const LinearAttentionArgs& a, cudaStream_t stream) {
  const int64_t bh = a.batch * a.heads;
  bool launch = false;
  cudaError_t err = PrepareLinearAttention<D>(a, stream, &launch);
  if (err != cudaSuccess || !launch) return err;
  if (a.nk > 0) {
    // Enough blocks for ~2 waves over the SMs, each covering a whole number of tiles.
    const int64_t tiles = (a.nk + kTile - 1) / kTile;
    int64_t splits = (2 * static_cast<int64_t>(a.num_sms) + bh - 1) / bh;
    splits = splits < 1 ? 1 : (splits > tiles ? tiles : splits);
    const int64_t rows = ((tiles + splits - 1) / splits) * kTile;
    splits = (a.nk + rows - 1) / rows;
    KvStateKernel<T, D>
        <<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(bh)), kThreads, 0, stream>>>(
            static_cast<const T*>(a.k), static_cast<const T*>(a.v), a.w_k, a.state, a.ksum, a.nk,
            static_cast<int>(a.heads), rows);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (a.nq > 0) {
    const int64_t tiles = (a.nq + kTile - 1) / kTile;
    OutputKernel<T, D>
        <<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(bh)), kThreads, 0, stream>>>(
            static_cast<const T*>(a.q), a.w_q, a.state, a.ksum, static_cast<T*>(a.out), a.nq,
            static_cast<int>(a.heads), a.eps);
    err = cudaGetLastError();
  }
  return err;
}

template <typename T>
cudaError_t LaunchForType(const LinearAttentionArgs& a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 64:
      return Launch<T, 64>(a, stream);
    case 128:
      return Launch<T, 128>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace

bool LinearAttentionCudaSupportsHeadDim(int64_t head_dim) {
  return head_dim == 64 || head_dim == 128;
}

int LaunchLinearAttention(const LinearAttentionArgs& args, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const cudaError_t err = args.dtype == ElementType::kBFloat16
                              ? LaunchForType<__nv_bfloat16>(args, s)
                              : LaunchForType<float>(args, s);
  return static_cast<int>(err);
}

}  // namespace linvideo::kernels::cuda
