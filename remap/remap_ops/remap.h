// Shared declarations of the remap ops: argument checks (remap_cpu.cpp) and the CUDA launchers
// (remap_cuda.cu). The launchers take raw pointers so that nvcc never sees a torch header.
#pragma once
#include <cstdint>

#ifdef REMAP_TORCH_SIDE
#include <optional>
#include <ATen/core/Tensor.h>

namespace remap {
// Validate the arguments of each op and return them in the layout the kernels read:
// last dimension dense (stride 1), index tensors contiguous int64.
struct KeepArgs { at::Tensor x, ids; int64_t n, l, k, d; };
KeepArgs keep_args(const at::Tensor& x, const at::Tensor& ids_keep);

struct KeepBackwardArgs { at::Tensor grad, ids; int64_t n, l, k, d; };
KeepBackwardArgs keep_backward_args(const at::Tensor& grad, const at::Tensor& ids_keep, int64_t length);

struct RestoreArgs {
  at::Tensor x, ids, mask, pos;  // pos undefined when absent
  int64_t n, k1, l, d;
  int64_t pos_sn, pos_sl;        // pos strides over batch (0 when broadcast) and rows
};
RestoreArgs restore_args(const at::Tensor& x, const at::Tensor& ids_restore, const at::Tensor& mask_token,
                         const std::optional<at::Tensor>& pos);

struct RestoreBackwardArgs { at::Tensor grad, ids; int64_t n, k1, l, d; };
RestoreBackwardArgs restore_backward_args(const at::Tensor& grad, const at::Tensor& ids_restore, int64_t x_rows);
}  // namespace remap
#endif

#ifdef REMAP_WITH_CUDA
namespace remap::cuda {
// dtype codes: 0 float32, 1 float64, 2 bfloat16, 3 float16. Strides are in elements.
// Every launcher queues its kernel(s) on `stream` (a cudaStream_t) and returns at once.
void keep_forward(int dtype, const void* x, int64_t sxn, int64_t sxl, const int64_t* ids, void* out,
                  int64_t n, int64_t l, int64_t k, int64_t d, void* stream);
// grad_x must be zero-filled [n, l, d]; grad is [n, k, d] with strides (sgn, sgk, 1).
void keep_backward(int dtype, const void* grad, int64_t sgn, int64_t sgk, const int64_t* ids, void* grad_x,
                   int64_t n, int64_t l, int64_t k, int64_t d, void* stream);
void restore_forward(int dtype, const void* x, int64_t sxn, int64_t sxl, const int64_t* ids, const void* mask,
                     const void* pos, int64_t spn, int64_t spl, void* out,
                     int64_t n, int64_t k1, int64_t l, int64_t d, void* stream);
// grad_x [n, k1, d] is written whole; mask_part [n, d] receives per-sample sums in float (double for float64).
void restore_backward(int dtype, const void* grad, int64_t sgn, int64_t sgl, const int64_t* ids, void* grad_x,
                      void* mask_part, int64_t n, int64_t k1, int64_t l, int64_t d, void* stream);
}  // namespace remap::cuda
#endif
