// CUDA registration of the remap ops: argument checks and outputs here, kernels in remap_cuda.cu.
#define REMAP_TORCH_SIDE
#define REMAP_WITH_CUDA
#include "remap.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

namespace remap {
namespace {

int dtype_code(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return 0;
    case at::kDouble: return 1;
    case at::kBFloat16: return 2;
    default: return 3;  // kHalf; the argument checks admit nothing else
  }
}

void* stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

at::Tensor keep_cuda(const at::Tensor& x_in, const at::Tensor& ids_in) {
  c10::cuda::CUDAGuard guard(x_in.device());
  auto a = keep_args(x_in, ids_in);
  at::Tensor out = at::empty({a.n, a.k, a.d}, a.x.options().memory_format(at::MemoryFormat::Contiguous));
  cuda::keep_forward(dtype_code(a.x.scalar_type()), a.x.const_data_ptr(), a.x.stride(0), a.x.stride(1),
                     a.ids.const_data_ptr<int64_t>(), out.mutable_data_ptr(), a.n, a.l, a.k, a.d, stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor keep_backward_cuda(const at::Tensor& grad_in, const at::Tensor& ids_in, int64_t length) {
  c10::cuda::CUDAGuard guard(grad_in.device());
  auto a = keep_backward_args(grad_in, ids_in, length);
  at::Tensor gx = at::zeros({a.n, a.l, a.d}, a.grad.options().memory_format(at::MemoryFormat::Contiguous));
  cuda::keep_backward(dtype_code(a.grad.scalar_type()), a.grad.const_data_ptr(), a.grad.stride(0),
                      a.grad.stride(1), a.ids.const_data_ptr<int64_t>(), gx.mutable_data_ptr(), a.n, a.l, a.k, a.d,
                      stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return gx;
}

at::Tensor restore_cuda(const at::Tensor& x_in, const at::Tensor& ids_in, const at::Tensor& mask_in,
                        const std::optional<at::Tensor>& pos_in) {
  c10::cuda::CUDAGuard guard(x_in.device());
  auto a = restore_args(x_in, ids_in, mask_in, pos_in);
  at::Tensor out = at::empty({a.n, a.l + 1, a.d}, a.x.options().memory_format(at::MemoryFormat::Contiguous));
  cuda::restore_forward(dtype_code(a.x.scalar_type()), a.x.const_data_ptr(), a.x.stride(0), a.x.stride(1),
                        a.ids.const_data_ptr<int64_t>(), a.mask.const_data_ptr(),
                        a.pos.defined() ? a.pos.const_data_ptr() : nullptr, a.pos_sn, a.pos_sl,
                        out.mutable_data_ptr(), a.n, a.k1, a.l, a.d, stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

std::tuple<at::Tensor, at::Tensor> restore_backward_cuda(const at::Tensor& grad_in, const at::Tensor& ids_in,
                                                         int64_t x_rows) {
  c10::cuda::CUDAGuard guard(grad_in.device());
  auto a = restore_backward_args(grad_in, ids_in, x_rows);
  const auto opts = a.grad.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor gx = at::empty({a.n, a.k1, a.d}, opts);
  const auto acc_t = a.grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (a.n == 0) return {gx, at::zeros({a.d}, opts)};
  at::Tensor part = at::empty({a.n, a.d}, opts.dtype(acc_t));
  cuda::restore_backward(dtype_code(a.grad.scalar_type()), a.grad.const_data_ptr(), a.grad.stride(0),
                         a.grad.stride(1), a.ids.const_data_ptr<int64_t>(), gx.mutable_data_ptr(),
                         part.mutable_data_ptr(), a.n, a.k1, a.l, a.d, stream());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {gx, at::sum(part, 0).to(a.grad.scalar_type())};
}

}  // namespace
}  // namespace remap

TORCH_LIBRARY_IMPL(remap, CUDA, m) {
  m.impl("keep", &remap::keep_cuda);
  m.impl("keep_backward", &remap::keep_backward_cuda);
  m.impl("restore", &remap::restore_cuda);
  m.impl("restore_backward", &remap::restore_backward_cuda);
}
