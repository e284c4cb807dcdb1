// CUDA kernels of the remap ops. Only CUDA headers here (no torch), so nvcc stays quick; the tensor
// handling and registration live in remap_cuda_impl.cpp. Semantics: see remap_cpu.cpp.
#define REMAP_WITH_CUDA
#include "remap.h"

#include <cassert>
#include <type_traits>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace remap::cuda {
namespace {

template <typename T> struct Num {
  using acc = float;
  __device__ static float to(T v) { return static_cast<float>(v); }
  __device__ static T from(float v) { return static_cast<T>(v); }
};
template <> struct Num<double> {
  using acc = double;
  __device__ static double to(double v) { return v; }
  __device__ static double from(double v) { return v; }
};
template <> struct Num<__nv_bfloat16> {
  using acc = float;
  __device__ static float to(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 from(float v) { return __float2bfloat16(v); }  // round to nearest even
};
template <> struct Num<__half> {
  using acc = float;
  __device__ static float to(__half v) { return __half2float(v); }
  __device__ static __half from(float v) { return __float2half(v); }
};

constexpr int kThreads = 256;
int threads_for(int64_t d) { return d >= kThreads ? kThreads : static_cast<int>(((d + 31) / 32) * 32); }
unsigned col_blocks(int64_t d) { return static_cast<unsigned>((d + kThreads - 1) / kThreads); }

// One block per output row, threads along D.
template <typename T>
__global__ void keep_fwd(const T* __restrict__ x, int64_t sxn, int64_t sxl, const int64_t* __restrict__ ids,
                         T* __restrict__ out, int64_t l,
                         int64_t k, int64_t d) {
  const int64_t r = blockIdx.x;
  const int64_t idx = ids[r];
  assert(idx >= 0 && idx < l);
  const T* src = x + (r / k) * sxn + idx * sxl;
  T* dst = out + r * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = src[c];
}

// grid (N, column blocks): each thread owns one column of one sample and walks its K rows in order, so
// repeated indices accumulate without atomics and the result is deterministic.
template <typename T>
__global__ void keep_bwd(const T* __restrict__ g, int64_t sgn, int64_t sgk, const int64_t* __restrict__ ids,
                         T* __restrict__ gx, int64_t l, int64_t k,
                         int64_t d) {
  const int64_t i = blockIdx.x, c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= d) return;
#pragma unroll 4
  for (int64_t j = 0; j < k; ++j) {
    const int64_t idx = ids[i * k + j];
    assert(idx >= 0 && idx < l);
    T* dst = gx + (i * l + idx) * d + c;
    *dst = Num<T>::from(Num<T>::to(*dst) + Num<T>::to(g[i * sgn + j * sgk + c]));
  }
}

template <typename T>
__global__ void restore_fwd(const T* __restrict__ x, int64_t sxn, int64_t sxl, const int64_t* __restrict__ ids,
                            const T* __restrict__ mask, const T* __restrict__ pos, int64_t spn, int64_t spl,
                            T* __restrict__ out, int64_t kv, int64_t l, int64_t d) {
  const int64_t r = blockIdx.x, rows = l + 1, i = r / rows, j = r % rows;
  const T* src;
  if (j == 0) {
    src = x + i * sxn;
  } else {
    const int64_t idx = ids[i * l + j - 1];
    assert(idx >= 0 && idx < l);
    src = idx < kv ? x + i * sxn + (idx + 1) * sxl : mask;
  }
  T* dst = out + r * d;
  if (pos) {
    const T* p = pos + i * spn + j * spl;
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = Num<T>::from(Num<T>::to(src[c]) + Num<T>::to(p[c]));
  } else {
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) dst[c] = src[c];
  }
}

template <typename T>
__global__ void restore_bwd(const T* __restrict__ g, int64_t sgn, int64_t sgl, const int64_t* __restrict__ ids,
                            T* __restrict__ gx, typename Num<T>::acc* __restrict__ part, int64_t k1, int64_t l,
                            int64_t d) {
  using A = typename Num<T>::acc;
  const int64_t i = blockIdx.x, c = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= d) return;
  const T* gi = g + i * sgn + c;
  T* oi = gx + i * k1 * d + c;
  oi[0] = gi[0];
  for (int64_t j = 1; j < k1; ++j) oi[j * d] = Num<T>::from(A(0));
  A m = A(0);
#pragma unroll 4
  for (int64_t j = 0; j < l; ++j) {
    const int64_t idx = ids[i * l + j];
    assert(idx >= 0 && idx < l);
    const T v = gi[(j + 1) * sgl];
    if (idx < k1 - 1) {
      T* dst = oi + (idx + 1) * d;
      *dst = Num<T>::from(Num<T>::to(*dst) + Num<T>::to(v));
    } else {
      m += static_cast<A>(Num<T>::to(v));
    }
  }
  part[i * d + c] = m;
}

template <typename F> void by_dtype(int dtype, F&& f) {
  switch (dtype) {
    case 0: f(static_cast<float*>(nullptr)); break;
    case 1: f(static_cast<double*>(nullptr)); break;
    case 2: f(static_cast<__nv_bfloat16*>(nullptr)); break;
    default: f(static_cast<__half*>(nullptr)); break;
  }
}

}  // namespace

void keep_forward(int dtype, const void* x, int64_t sxn, int64_t sxl, const int64_t* ids, void* out, int64_t n,
                  int64_t l, int64_t k, int64_t d, void* stream) {
  if (n * k == 0 || d == 0) return;
  by_dtype(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    keep_fwd<T><<<static_cast<unsigned>(n * k), threads_for(d), 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(x), sxn, sxl, ids, static_cast<T*>(out), l, k, d);
  });
}

void keep_backward(int dtype, const void* grad, int64_t sgn, int64_t sgk, const int64_t* ids, void* grad_x,
                   int64_t n, int64_t l, int64_t k, int64_t d, void* stream) {
  if (n * k == 0 || d == 0) return;
  by_dtype(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    keep_bwd<T><<<dim3(static_cast<unsigned>(n), col_blocks(d)), threads_for(d), 0,
                  static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(grad), sgn, sgk, ids,
                                                       static_cast<T*>(grad_x), l, k, d);
  });
}

void restore_forward(int dtype, const void* x, int64_t sxn, int64_t sxl, const int64_t* ids, const void* mask,
                     const void* pos, int64_t spn, int64_t spl, void* out, int64_t n, int64_t k1, int64_t l,
                     int64_t d, void* stream) {
  if (n == 0 || d == 0) return;
  by_dtype(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    restore_fwd<T><<<static_cast<unsigned>(n * (l + 1)), threads_for(d), 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(x), sxn, sxl, ids, static_cast<const T*>(mask), static_cast<const T*>(pos), spn, spl,
        static_cast<T*>(out), k1 - 1, l, d);
  });
}

void restore_backward(int dtype, const void* grad, int64_t sgn, int64_t sgl, const int64_t* ids, void* grad_x,
                      void* mask_part, int64_t n, int64_t k1, int64_t l, int64_t d, void* stream) {
  if (n == 0 || d == 0) return;
  by_dtype(dtype, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    restore_bwd<T><<<dim3(static_cast<unsigned>(n), col_blocks(d)), threads_for(d), 0,
                     static_cast<cudaStream_t>(stream)>>>(static_cast<const T*>(grad), sgn, sgl, ids,
                                                          static_cast<T*>(grad_x),
                                                          static_cast<typename Num<T>::acc*>(mask_part), k1, l, d);
  });
}

}  // namespace remap::cuda
