// Tensor-core Hedgehog linear attention for CUDA, bf16 (see linear_attention_fused_cuda.h for the
// raw-pointer interface and linear_attention.h for the formula). Every matrix product runs on the
// tensor cores through WMMA (mma.sync on sm_80+: bf16 operands, fp32 accumulators); φ is fused
// and never reaches global memory.
//
// One block = 8 warps, persistent over a contiguous token range of one (batch, head); tiles of
// kTokens = 64 tokens:
//   feature map   Z = X·W̃ with W̃ = W_hi + W_lo split into two bf16 matrices (two MMAs, so Z is
//                 as accurate as an fp32 product of the bf16 inputs), then per row in fp32
//                 φ = [softmax(Z), softmax(−Z)] written to shared memory as bf16;
//   pass 1        S += Φᵀ·V ([2D, T]·[T, D], fp32 accumulators held in registers across the whole
//                 token range), Σφ in fp32 from the same bf16 φ; atomically added to the workspace
//                 once per block;
//   pass 2        S and Σφ(k) loaded once per block (S as bf16), O = Φ·S on the tensor cores,
//                 den = Φ·Σφ(k) + eps in fp32, out = O / den as bf16.
// Shared memory (D = 128): W̃ hi/lo 68 KB, X (and V) 17 KB, Z (and O) 33 KB, Φ 33 KB; pass 2 adds S
// 68 KB: 151 / 220 KB, one block per SM. That fits the opt-in limit of sm_90 / sm_100 (227 KB) but
// not sm_80's (163 KB) or sm_86/89's (99 KB): the glue checks LinearAttentionTensorCoreSharedBytes
// against the device (D = 64 needs 80 KB). Rows are padded by 16 bytes against bank conflicts.

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "kernels/cuda_warp.cuh"
#include "kernels/linear_attention_fused_cuda.h"

namespace linvideo::kernels::cuda {
namespace {

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define LINVIDEO_TC_AVAILABLE 1
#else
#define LINVIDEO_TC_AVAILABLE 0
#endif

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

constexpr int kThreads = 256;  // 8 warps
[[maybe_unused]] constexpr int kWarps = kThreads / 32;
constexpr int kTokens = 64;  // tokens per tile
constexpr int kPadBf16 = 8;  // 16 bytes of padding per bf16 row
constexpr int kPadF32 = 4;   // 16 bytes of padding per fp32 row

// Shared-memory layout (byte offsets; every buffer starts 32-byte aligned as WMMA requires).
template <int D>
struct Layout {
  static constexpr int kW = D + kPadBf16;        // row stride of W_hi, W_lo, X, S (elements)
  static constexpr int kZ = D + kPadF32;         // row stride of Z (fp32)
  static constexpr int kPhi = 2 * D + kPadBf16;  // row stride of Φ
  static constexpr int kWBytes = D * kW * 2;
  static constexpr int kWHi = 0;
  static constexpr int kWLo = kWHi + kWBytes;
  static constexpr int kX = kWLo + kWBytes;
  static constexpr int kZOff = kX + kTokens * kW * 2;
  static constexpr int kPhiOff = kZOff + kTokens * kZ * 4;
  static constexpr int kFeatureEnd = kPhiOff + kTokens * kPhi * 2;  // end of pass 1's buffers
  static constexpr int kS = kFeatureEnd;                            // pass 2: S [2D, kW] bf16
  static constexpr int kKsum = kS + 2 * D * kW * 2;                 // pass 2: Σφ(k) [2D] fp32
  static constexpr int kDen = kKsum + 2 * D * 4;                    // pass 2: den [kTokens] fp32
  static constexpr int kOutputEnd = kDen + kTokens * 4;
  static_assert(kWLo % 32 == 0 && kX % 32 == 0 && kZOff % 32 == 0 && kPhiOff % 32 == 0 &&
                    kS % 32 == 0 && kKsum % 16 == 0,
                "WMMA needs 32-byte aligned buffers");
};

// W̃ of one head (fp32 [D, D] in global memory) into shared memory as W_hi + W_lo (bf16 each).
template <int D>
__device__ void LoadFeatureWeights(const float* __restrict__ w, bf16* w_hi, bf16* w_lo) {
  constexpr int kW = Layout<D>::kW;
  for (int e = threadIdx.x; e < D * D; e += kThreads) {
    const int i = e / D, j = e % D;
    const float x = __ldg(w + e);
    const bf16 hi = __float2bfloat16(x);
    w_hi[i * kW + j] = hi;
    w_lo[i * kW + j] = __float2bfloat16(x - __bfloat162float(hi));
  }
}

// Rows [n0, n0 + kTokens) of one head into `dst` (row stride Layout<D>::kW); rows at or past
// `end` are zero. `src` points at token 0 of the head, tokens `token_stride` elements apart (a
// multiple of 8: 16-byte loads).
template <int D>
__device__ void LoadRows(const bf16* __restrict__ src, int64_t token_stride, int64_t n0,
                         int64_t end, bf16* dst) {
  constexpr int kVec = D / 8;  // 16-byte vectors per row
  for (int e = threadIdx.x; e < kTokens * kVec; e += kThreads) {
    const int t = e / kVec, c = (e % kVec) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (n0 + t < end) val = *reinterpret_cast<const uint4*>(src + (n0 + t) * token_stride + c);
    *reinterpret_cast<uint4*>(dst + t * Layout<D>::kW + c) = val;
  }
}

// φ of tokens [n0, n0 + kTokens) into Φ (bf16, rows at or past `end` zero). Starts by loading the
// tile into X; ends synchronised.
template <int D>
__device__ void FeatureMapTile(const bf16* __restrict__ x, int64_t token_stride, int64_t n0,
                               int64_t end, unsigned char* smem) {
#if LINVIDEO_TC_AVAILABLE  // bf16 fragments exist from sm_80 on
  using L = Layout<D>;
  const bf16* w_hi = reinterpret_cast<const bf16*>(smem + L::kWHi);
  const bf16* w_lo = reinterpret_cast<const bf16*>(smem + L::kWLo);
  bf16* xs = reinterpret_cast<bf16*>(smem + L::kX);
  float* z = reinterpret_cast<float*>(smem + L::kZOff);
  bf16* phi = reinterpret_cast<bf16*>(smem + L::kPhiOff);
  LoadRows<D>(x, token_stride, n0, end, xs);
  __syncthreads();

  // Z = X·W_hi + X·W_lo: warp w owns row block w % 4 and column blocks w / 4, w / 4 + 2, ...
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kCols = D / 32;  // column blocks per warp
  {
    const int rb = warp % 4, cb0 = warp / 4;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kCols];
#pragma unroll
    for (int j = 0; j < kCols; ++j) wmma::fill_fragment(acc[j], 0.f);
#pragma unroll
    for (int kb = 0; kb < D / 16; ++kb) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
      wmma::load_matrix_sync(a, xs + rb * 16 * L::kW + kb * 16, L::kW);
#pragma unroll
      for (int j = 0; j < kCols; ++j) {
        const int cb = cb0 + 2 * j;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
        wmma::load_matrix_sync(b, w_hi + kb * 16 * L::kW + cb * 16, L::kW);
        wmma::mma_sync(acc[j], a, b, acc[j]);
        wmma::load_matrix_sync(b, w_lo + kb * 16 * L::kW + cb * 16, L::kW);
        wmma::mma_sync(acc[j], a, b, acc[j]);
      }
    }
#pragma unroll
    for (int j = 0; j < kCols; ++j) {
      wmma::store_matrix_sync(z + rb * 16 * L::kZ + (cb0 + 2 * j) * 16, acc[j], L::kZ,
                              wmma::mem_row_major);
    }
  }
  __syncthreads();

  // One warp per row: max / min for stability, both normalised exponentials in fp32, stored bf16.
  constexpr int kPer = D / 32;  // values per lane
  for (int t = warp; t < kTokens; t += kWarps) {
    bf16* prow = phi + t * L::kPhi;
    if (n0 + t >= end) {
      for (int f = lane; f < 2 * D; f += 32) prow[f] = __float2bfloat16(0.f);
      continue;
    }
    const float* zrow = z + t * L::kZ;
    float zv[kPer];
    float mx = -INFINITY, mn = INFINITY;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      zv[i] = zrow[lane + 32 * i];
      mx = fmaxf(mx, zv[i]);
      mn = fminf(mn, zv[i]);
    }
    mx = WarpMax(mx);
    mn = WarpMin(mn);
    float ep[kPer], en[kPer], sp = 0.f, sn = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      ep[i] = __expf(zv[i] - mx);
      en[i] = __expf(mn - zv[i]);
      sp += ep[i];
      sn += en[i];
    }
    const float ip = 1.f / WarpSum(sp), in = 1.f / WarpSum(sn);
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      prow[lane + 32 * i] = __float2bfloat16(ep[i] * ip);
      prow[D + lane + 32 * i] = __float2bfloat16(en[i] * in);
    }
  }
  __syncthreads();
#endif
}

// Pass 1 over tokens [blockIdx.x · rows, +rows) of (batch, head) blockIdx.y.
template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    KvStateTcKernel(const bf16* __restrict__ k, const bf16* __restrict__ v,
                    const float* __restrict__ w_k, float* __restrict__ state,
                    float* __restrict__ ksum, int64_t nk, int heads, int64_t rows_per_split) {
#if LINVIDEO_TC_AVAILABLE
  using L = Layout<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* xs = reinterpret_cast<bf16*>(smem + L::kX);  // holds V after the feature map
  const bf16* phi = reinterpret_cast<const bf16*>(smem + L::kPhiOff);
  const int bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const int64_t token_stride = static_cast<int64_t>(heads) * D;
  const int64_t base = (static_cast<int64_t>(b) * nk * heads + h) * D;
  const int64_t begin = blockIdx.x * rows_per_split;
  const int64_t end = min(nk, begin + rows_per_split);
  LoadFeatureWeights<D>(w_k + static_cast<int64_t>(h) * D * D,
                        reinterpret_cast<bf16*>(smem + L::kWHi),
                        reinterpret_cast<bf16*>(smem + L::kWLo));
  // Loaded weights are read after FeatureMapTile's first barrier.

  // S block of warp w: feature rows [w·16·kRowBlocks, +16·kRowBlocks), all D columns.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kRowBlocks = 2 * D / 16 / kWarps;  // 2 for D = 128, 1 for D = 64
  constexpr int kColBlocks = D / 16;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kRowBlocks][kColBlocks];
#pragma unroll
  for (int i = 0; i < kRowBlocks; ++i) {
#pragma unroll
    for (int j = 0; j < kColBlocks; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  }
  float kacc = 0.f;  // Σφ of feature threadIdx.x (< 2D)

  for (int64_t n0 = begin; n0 < end; n0 += kTokens) {
    FeatureMapTile<D>(k + base, token_stride, n0, end, smem);
    LoadRows<D>(v + base, token_stride, n0, end, xs);  // X is free once Z exists
    if (threadIdx.x < 2 * D) {
#pragma unroll 8
      for (int t = 0; t < kTokens; ++t) kacc += __bfloat162float(phi[t * L::kPhi + threadIdx.x]);
    }
    __syncthreads();
#pragma unroll
    for (int tb = 0; tb < kTokens / 16; ++tb) {
      // Φᵀ block: Φ is [T, 2D] row-major, so Φᵀ is column-major with the same stride.
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> a[kRowBlocks];
#pragma unroll
      for (int i = 0; i < kRowBlocks; ++i) {
        const int fb = warp * kRowBlocks + i;
        wmma::load_matrix_sync(a[i], phi + tb * 16 * L::kPhi + fb * 16, L::kPhi);
      }
#pragma unroll
      for (int j = 0; j < kColBlocks; ++j) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bv;
        wmma::load_matrix_sync(bv, xs + tb * 16 * L::kW + j * 16, L::kW);
#pragma unroll
        for (int i = 0; i < kRowBlocks; ++i) wmma::mma_sync(acc[i][j], a[i], bv, acc[i][j]);
      }
    }
    __syncthreads();  // before the next tile overwrites X, Z and Φ
  }

  // Each warp stages its 16x16 blocks through its own slice of Z, then adds them to the workspace.
  float* scratch = reinterpret_cast<float*>(smem + L::kZOff) + warp * 256;
  float* sb = state + static_cast<int64_t>(bh) * 2 * D * D;
#pragma unroll
  for (int i = 0; i < kRowBlocks; ++i) {
    const int f0 = (warp * kRowBlocks + i) * 16;
#pragma unroll
    for (int j = 0; j < kColBlocks; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
#pragma unroll
      for (int r = 0; r < 8; ++r) {
        const int e = lane + 32 * r, row = e / 16, col = e % 16;
        atomicAdd(sb + (f0 + row) * D + j * 16 + col, scratch[e]);
      }
      __syncwarp();
    }
  }
  if (threadIdx.x < 2 * D) atomicAdd(ksum + static_cast<int64_t>(bh) * 2 * D + threadIdx.x, kacc);
#else
  __trap();  // built for a device without bf16 MMA; the glue never launches it there
#endif
}

// Pass 2 over query tokens [blockIdx.x · rows, +rows) of (batch, head) blockIdx.y.
template <int D>
__global__ void __launch_bounds__(kThreads, 1)
    OutputTcKernel(const bf16* __restrict__ q, const float* __restrict__ w_q,
                   const float* __restrict__ state, const float* __restrict__ ksum,
                   bf16* __restrict__ out, int64_t nq, int heads, float eps,
                   int64_t rows_per_split) {
#if LINVIDEO_TC_AVAILABLE
  using L = Layout<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  const bf16* phi = reinterpret_cast<const bf16*>(smem + L::kPhiOff);
  float* o = reinterpret_cast<float*>(smem + L::kZOff);  // O reuses Z
  bf16* s = reinterpret_cast<bf16*>(smem + L::kS);
  float* ks = reinterpret_cast<float*>(smem + L::kKsum);
  float* den = reinterpret_cast<float*>(smem + L::kDen);
  const int bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const int64_t token_stride = static_cast<int64_t>(heads) * D;
  const int64_t base = (static_cast<int64_t>(b) * nq * heads + h) * D;
  const int64_t begin = blockIdx.x * rows_per_split;
  const int64_t end = min(nq, begin + rows_per_split);
  LoadFeatureWeights<D>(w_q + static_cast<int64_t>(h) * D * D,
                        reinterpret_cast<bf16*>(smem + L::kWHi),
                        reinterpret_cast<bf16*>(smem + L::kWLo));
  const float* sb = state + static_cast<int64_t>(bh) * 2 * D * D;
  for (int e = threadIdx.x; e < 2 * D * D; e += kThreads) {
    s[(e / D) * L::kW + e % D] = __float2bfloat16(sb[e]);
  }
  for (int f = threadIdx.x; f < 2 * D; f += kThreads)
    ks[f] = ksum[static_cast<int64_t>(bh) * 2 * D + f];
  // All of the above is read after FeatureMapTile's first barrier.

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  constexpr int kCols = D / 32;  // column blocks per warp, as in the feature map
  const int rb = warp % 4, cb0 = warp / 4;
  for (int64_t n0 = begin; n0 < end; n0 += kTokens) {
    FeatureMapTile<D>(q + base, token_stride, n0, end, smem);
    for (int t = warp; t < kTokens; t += kWarps) {
      float p = 0.f;
      for (int f = lane; f < 2 * D; f += 32) p += __bfloat162float(phi[t * L::kPhi + f]) * ks[f];
      p = WarpSum(p);
      if (lane == 0) den[t] = p + eps;
    }
    {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kCols];
#pragma unroll
      for (int j = 0; j < kCols; ++j) wmma::fill_fragment(acc[j], 0.f);
#pragma unroll 4
      for (int kb = 0; kb < 2 * D / 16; ++kb) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::load_matrix_sync(a, phi + rb * 16 * L::kPhi + kb * 16, L::kPhi);
#pragma unroll
        for (int j = 0; j < kCols; ++j) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> bs;
          wmma::load_matrix_sync(bs, s + kb * 16 * L::kW + (cb0 + 2 * j) * 16, L::kW);
          wmma::mma_sync(acc[j], a, bs, acc[j]);
        }
      }
      // Z is no longer read (the feature map ended on a barrier after its softmax).
#pragma unroll
      for (int j = 0; j < kCols; ++j) {
        wmma::store_matrix_sync(o + rb * 16 * L::kZ + (cb0 + 2 * j) * 16, acc[j], L::kZ,
                                wmma::mem_row_major);
      }
    }
    __syncthreads();
    constexpr int kVec = D / 8;
    for (int e = threadIdx.x; e < kTokens * kVec; e += kThreads) {
      const int t = e / kVec, c = (e % kVec) * 8;
      if (n0 + t >= end) continue;
      const float inv = 1.f / den[t];
      // Two 16-byte reads (rows of O are 16-byte aligned: kZ·4 bytes is a multiple of 16).
      const float4 lo = *reinterpret_cast<const float4*>(o + t * L::kZ + c);
      const float4 hi = *reinterpret_cast<const float4*>(o + t * L::kZ + c + 4);
      const float vals[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
      __align__(16) bf16 packed[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) packed[i] = __float2bfloat16(vals[i] * inv);
      *reinterpret_cast<uint4*>(out + base + (n0 + t) * token_stride + c) =
          *reinterpret_cast<const uint4*>(packed);
    }
    __syncthreads();  // before the next tile overwrites X, Z, Φ and den
  }
#else
  __trap();  // built for a device without bf16 MMA; the glue never launches it there
#endif
}

// Blocks per (batch, head) so that the grid is at most one wave (one block per SM: rounding up
// would start a second wave almost empty, e.g. 144 blocks for CFG's 24 heads on 132 SMs), each
// covering a whole number of tiles; returns the rows per block and sets `splits`.
int64_t RowsPerSplit(int64_t n, int64_t bh, int num_sms, int64_t& splits) {
  const int64_t tiles = (n + kTokens - 1) / kTokens;
  splits = static_cast<int64_t>(num_sms) / bh;
  splits = splits < 1 ? 1 : (splits > tiles ? tiles : splits);
  const int64_t rows = ((tiles + splits - 1) / splits) * kTokens;
  splits = (n + rows - 1) / rows;
  return rows;
}

template <int D>
cudaError_t LaunchTc(const LinearAttentionArgs& a, cudaStream_t stream) {
  using L = Layout<D>;
  const int64_t bh = a.batch * a.heads;
  bool launch = false;
  cudaError_t err = PrepareLinearAttention<D>(a, stream, &launch);
  if (err != cudaSuccess || !launch) return err;
  if (a.nk > 0) {
    err = cudaFuncSetAttribute(KvStateTcKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               L::kFeatureEnd);
    if (err != cudaSuccess) return err;
    int64_t splits = 0;
    const int64_t rows = RowsPerSplit(a.nk, bh, a.num_sms, splits);
    KvStateTcKernel<D><<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(bh)), kThreads,
                         L::kFeatureEnd, stream>>>(static_cast<const bf16*>(a.k),
                                                   static_cast<const bf16*>(a.v), a.w_k, a.state,
                                                   a.ksum, a.nk, static_cast<int>(a.heads), rows);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (a.nq > 0) {
    err = cudaFuncSetAttribute(OutputTcKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               L::kOutputEnd);
    if (err != cudaSuccess) return err;
    int64_t splits = 0;
    const int64_t rows = RowsPerSplit(a.nq, bh, a.num_sms, splits);
    OutputTcKernel<D><<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(bh)), kThreads,
                        L::kOutputEnd, stream>>>(static_cast<const bf16*>(a.q), a.w_q, a.state,
                                                 a.ksum, static_cast<bf16*>(a.out), a.nq,
                                                 static_cast<int>(a.heads), a.eps, rows);
    err = cudaGetLastError();
  }
  return err;
}

}  // namespace

int64_t LinearAttentionTensorCoreSharedBytes(int64_t head_dim) {
  switch (head_dim) {
    case 64:
      return Layout<64>::kOutputEnd;
    case 128:
      return Layout<128>::kOutputEnd;
    default:
      return -1;
  }
}

int LaunchLinearAttentionTensorCore(const LinearAttentionArgs& args, void* stream) {
  if (args.dtype != ElementType::kBFloat16) return static_cast<int>(cudaErrorInvalidValue);
  auto s = static_cast<cudaStream_t>(stream);
  switch (args.head_dim) {
    case 64:
      return static_cast<int>(LaunchTc<64>(args, s));
    case 128:
      return static_cast<int>(LaunchTc<128>(args, s));
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace linvideo::kernels::cuda
