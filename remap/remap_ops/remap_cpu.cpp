// remap ops: schemas, argument checks and the CPU kernels (OpenMP through at::parallel_for).
//
//   keep(x[N,L,D], ids_keep[N,K]) -> [N,K,D]                      out[n,k] = x[n, ids_keep[n,k]]
//   restore(x[N,1+K,D], ids_restore[N,L], mask_token[D], pos?) -> [N,1+L,D]
//       out[n,0] = x[n,0];  out[n,1+l] = ids_restore[n,l] < K ? x[n,1+ids_restore[n,l]] : mask_token
//       then + pos[n or 0, row] when pos is given ([1+L,D] or [1|N,1+L,D]).
//   keep_backward / restore_backward: the adjoints (registered as ops so that autograd, torch.compile and
//   double backward see them; remap/__init__.py wires them up with torch.library.register_autograd).
//
// Semantics are those of the plain PyTorch path in remap/reference.py.
#define REMAP_TORCH_SIDE
#include "remap.h"

#include <atomic>
#include <algorithm>
#include <cstring>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

namespace remap {
namespace {

bool is_supported_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kDouble || t == at::kBFloat16 || t == at::kHalf;
}

at::Tensor rows_dense(const at::Tensor& t) {  // keep the caller's strides unless the last dim is strided
  return t.size(-1) <= 1 || t.stride(-1) == 1 ? t : t.contiguous();
}

at::Tensor index_tensor(const at::Tensor& ids, const char* name, const at::Tensor& like) {
  TORCH_CHECK(ids.scalar_type() == at::kLong, "remap: ", name, " must be int64, got ", ids.scalar_type());
  TORCH_CHECK(ids.device() == like.device(), "remap: ", name, " is on ", ids.device(), " but the data is on ",
              like.device());
  return ids.contiguous();
}

void check_data(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 3, "remap: ", name, " must be 3-D [N, rows, D], got shape ", t.sizes());
  TORCH_CHECK(is_supported_float(t.scalar_type()), "remap: ", name,
              " must be float32, float64, bfloat16 or float16, got ", t.scalar_type());
}

// Rows are copied or accumulated in chunks of at least ~16 KiB per task.
int64_t grain_rows(int64_t d, int64_t elem) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, d * elem)); }

template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

}  // namespace

KeepArgs keep_args(const at::Tensor& x, const at::Tensor& ids_keep) {
  check_data(x, "keep: x");
  TORCH_CHECK(ids_keep.dim() == 2 && ids_keep.size(0) == x.size(0),
              "remap: keep: ids_keep must be [N, K] with N = ", x.size(0), ", got shape ", ids_keep.sizes());
  return {rows_dense(x), index_tensor(ids_keep, "keep: ids_keep", x), x.size(0), x.size(1), ids_keep.size(1),
          x.size(2)};
}

KeepBackwardArgs keep_backward_args(const at::Tensor& grad, const at::Tensor& ids_keep, int64_t length) {
  check_data(grad, "keep_backward: grad");
  TORCH_CHECK(ids_keep.dim() == 2 && ids_keep.size(0) == grad.size(0) && ids_keep.size(1) == grad.size(1),
              "remap: keep_backward: ids_keep must be [N, K] = ", grad.sizes().slice(0, 2), ", got ",
              ids_keep.sizes());
  TORCH_CHECK(length >= 0, "remap: keep_backward: length must be >= 0");
  return {rows_dense(grad), index_tensor(ids_keep, "keep_backward: ids_keep", grad), grad.size(0), length,
          grad.size(1), grad.size(2)};
}

RestoreArgs restore_args(const at::Tensor& x, const at::Tensor& ids_restore, const at::Tensor& mask_token,
                         const std::optional<at::Tensor>& pos) {
  check_data(x, "restore: x");
  const int64_t n = x.size(0), k1 = x.size(1), d = x.size(2);
  TORCH_CHECK(k1 >= 1, "remap: restore: x must hold the cls token first (x.size(1) >= 1)");
  TORCH_CHECK(ids_restore.dim() == 2 && ids_restore.size(0) == n,
              "remap: restore: ids_restore must be [N, L] with N = ", n, ", got shape ", ids_restore.sizes());
  const int64_t l = ids_restore.size(1);
  TORCH_CHECK(k1 - 1 <= l, "remap: restore: x holds ", k1 - 1, " visible tokens, more than L = ", l);
  TORCH_CHECK(mask_token.numel() == d, "remap: restore: mask_token must hold D = ", d, " values, got shape ",
              mask_token.sizes());
  TORCH_CHECK(mask_token.scalar_type() == x.scalar_type() && mask_token.device() == x.device(),
              "remap: restore: mask_token must have x's dtype and device");
  RestoreArgs a{rows_dense(x), index_tensor(ids_restore, "restore: ids_restore", x),
                mask_token.reshape({d}).contiguous(), at::Tensor(), n, k1, l, d, 0, 0};
  if (pos.has_value() && pos->defined()) {
    const at::Tensor& p = *pos;
    TORCH_CHECK(p.scalar_type() == x.scalar_type() && p.device() == x.device(),
                "remap: restore: pos must have x's dtype and device");
    const bool ok2 = p.dim() == 2 && p.size(0) == l + 1 && p.size(1) == d;
    const bool ok3 = p.dim() == 3 && (p.size(0) == 1 || p.size(0) == n) && p.size(1) == l + 1 && p.size(2) == d;
    TORCH_CHECK(ok2 || ok3, "remap: restore: pos must be [1+L, D] or [1 or N, 1+L, D] = [", n, ", ", l + 1, ", ", d,
                "], got shape ", p.sizes());
    a.pos = rows_dense(p);
    a.pos_sl = a.pos.stride(-2);
    a.pos_sn = (ok3 && p.size(0) == n && n > 1) ? a.pos.stride(0) : 0;
  }
  return a;
}

RestoreBackwardArgs restore_backward_args(const at::Tensor& grad, const at::Tensor& ids_restore, int64_t x_rows) {
  check_data(grad, "restore_backward: grad");
  const int64_t n = grad.size(0), d = grad.size(2);
  TORCH_CHECK(ids_restore.dim() == 2 && ids_restore.size(0) == n && ids_restore.size(1) + 1 == grad.size(1),
              "remap: restore_backward: ids_restore must be [N, L] with grad [N, 1+L, D], got ", ids_restore.sizes(),
              " and ", grad.sizes());
  TORCH_CHECK(x_rows >= 1 && x_rows <= grad.size(1), "remap: restore_backward: x_rows out of range");
  return {rows_dense(grad), index_tensor(ids_restore, "restore_backward: ids_restore", grad), n, x_rows,
          ids_restore.size(1), d};
}

namespace {

at::Tensor keep_cpu(const at::Tensor& x_in, const at::Tensor& ids_in) {
  auto a = keep_args(x_in, ids_in);
  at::Tensor out = at::empty({a.n, a.k, a.d}, a.x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  const int64_t es = a.x.element_size(), sxn = a.x.stride(0), sxl = a.x.stride(1);
  const char* x = static_cast<const char*>(a.x.const_data_ptr());
  const int64_t* ids = a.ids.const_data_ptr<int64_t>();
  char* o = static_cast<char*>(out.mutable_data_ptr());
  const int64_t n = a.n, l = a.l, k = a.k, d = a.d;
  std::atomic<bool> bad{false};
  at::parallel_for(0, n * k, grain_rows(d, es), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t idx = ids[r];
      if (idx < 0 || idx >= l) { bad = true; continue; }
      std::memcpy(o + r * d * es, x + ((r / k) * sxn + idx * sxl) * es, d * es);
    }
  });
  TORCH_CHECK(!bad, "remap: keep: ids_keep holds an index outside [0, ", l, ")");
  return out;
}

at::Tensor keep_backward_cpu(const at::Tensor& grad_in, const at::Tensor& ids_in, int64_t length) {
  auto a = keep_backward_args(grad_in, ids_in, length);
  at::Tensor gx = at::empty({a.n, a.l, a.d}, a.grad.options().memory_format(at::MemoryFormat::Contiguous));
  if (gx.numel() == 0) return gx;
  std::atomic<bool> bad{false};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, a.grad.scalar_type(), "remap_keep_backward", [&] {
    const scalar_t* g = a.grad.const_data_ptr<scalar_t>();
    const int64_t* ids = a.ids.const_data_ptr<int64_t>();
    scalar_t* o = gx.mutable_data_ptr<scalar_t>();
    const int64_t sgn = a.grad.stride(0), sgk = a.grad.stride(1), l = a.l, k = a.k, d = a.d;
    // One task per sample: its rows of grad_x are written by that task alone, each once: copied on the
    // first hit, accumulated on repeated hits (no atomics), zero-filled when never hit.
    at::parallel_for(0, a.n, 1, [&](int64_t b, int64_t e) {
      std::vector<uint8_t> hit(l);
      for (int64_t i = b; i < e; ++i) {
        scalar_t* oi = o + i * l * d;
        std::fill(hit.begin(), hit.end(), 0);
        for (int64_t j = 0; j < k; ++j) {
          const int64_t idx = ids[i * k + j];
          if (idx < 0 || idx >= l) { bad = true; continue; }
          scalar_t* dst = oi + idx * d;
          const scalar_t* src = g + i * sgn + j * sgk;
          if (hit[idx]) {
            for (int64_t c = 0; c < d; ++c) dst[c] += src[c];
          } else {
            hit[idx] = 1;
            std::memcpy(static_cast<void*>(dst), src, d * sizeof(scalar_t));
          }
        }
        for (int64_t r = 0; r < l; ++r)
          if (!hit[r]) std::memset(static_cast<void*>(oi + r * d), 0, d * sizeof(scalar_t));
      }
    });
  });
  TORCH_CHECK(!bad, "remap: keep_backward: ids_keep holds an index outside [0, ", length, ")");
  return gx;
}

at::Tensor restore_cpu(const at::Tensor& x_in, const at::Tensor& ids_in, const at::Tensor& mask_in,
                       const std::optional<at::Tensor>& pos_in) {
  auto a = restore_args(x_in, ids_in, mask_in, pos_in);
  at::Tensor out = at::empty({a.n, a.l + 1, a.d}, a.x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  std::atomic<bool> bad{false};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, a.x.scalar_type(), "remap_restore", [&] {
    const scalar_t* x = a.x.const_data_ptr<scalar_t>();
    const scalar_t* mask = a.mask.const_data_ptr<scalar_t>();
    const scalar_t* pos = a.pos.defined() ? a.pos.const_data_ptr<scalar_t>() : nullptr;
    const int64_t* ids = a.ids.const_data_ptr<int64_t>();
    scalar_t* o = out.mutable_data_ptr<scalar_t>();
    const int64_t sxn = a.x.stride(0), sxl = a.x.stride(1), spn = a.pos_sn, spl = a.pos_sl;
    const int64_t rows = a.l + 1, kv = a.k1 - 1, l = a.l, d = a.d;
    // One pass over the output rows: each row is written once, straight from its source row.
    at::parallel_for(0, a.n * rows, grain_rows(d, sizeof(scalar_t)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t i = r / rows, j = r % rows;
        const scalar_t* src;
        if (j == 0) {
          src = x + i * sxn;
        } else {
          const int64_t idx = ids[i * l + j - 1];
          if (idx < 0 || idx >= l) { bad = true; continue; }
          src = idx < kv ? x + i * sxn + (idx + 1) * sxl : mask;
        }
        scalar_t* dst = o + r * d;
        if (pos) {
          const scalar_t* p = pos + i * spn + j * spl;
          for (int64_t c = 0; c < d; ++c) dst[c] = src[c] + p[c];
        } else {
          std::memcpy(static_cast<void*>(dst), src, d * sizeof(scalar_t));
        }
      }
    });
  });
  TORCH_CHECK(!bad, "remap: restore: ids_restore holds an index outside [0, ", a.l, ")");
  return out;
}

std::tuple<at::Tensor, at::Tensor> restore_backward_cpu(const at::Tensor& grad_in, const at::Tensor& ids_in,
                                                        int64_t x_rows) {
  auto a = restore_backward_args(grad_in, ids_in, x_rows);
  const auto opts = a.grad.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor gx = at::empty({a.n, a.k1, a.d}, opts);
  const auto acc_t = a.grad.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor part = at::empty({a.n, a.d}, opts.dtype(acc_t));
  std::atomic<bool> bad{false};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, a.grad.scalar_type(), "remap_restore_backward", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    const scalar_t* g = a.grad.const_data_ptr<scalar_t>();
    const int64_t* ids = a.ids.const_data_ptr<int64_t>();
    scalar_t* o = gx.mutable_data_ptr<scalar_t>();
    acc_t* pm = part.mutable_data_ptr<acc_t>();
    const int64_t sgn = a.grad.stride(0), sgl = a.grad.stride(1), k1 = a.k1, kv = a.k1 - 1, l = a.l, d = a.d;
    // One task per sample: the x gradient is the inverse gather (accumulated, so repeated indices are
    // exact too), the mask-token gradient a per-sample sum over the filled rows, reduced over N below.
    at::parallel_for(0, a.n, 1, [&](int64_t b, int64_t e) {
      std::vector<uint8_t> hit(kv);
      for (int64_t i = b; i < e; ++i) {
        const scalar_t* gi = g + i * sgn;
        scalar_t* oi = o + i * k1 * d;
        acc_t* mi = pm + i * d;
        std::memcpy(static_cast<void*>(oi), gi, d * sizeof(scalar_t));
        std::fill(hit.begin(), hit.end(), 0);
        for (int64_t c = 0; c < d; ++c) mi[c] = acc_t(0);
        for (int64_t j = 0; j < l; ++j) {
          const int64_t idx = ids[i * l + j];
          if (idx < 0 || idx >= l) { bad = true; continue; }
          const scalar_t* src = gi + (j + 1) * sgl;
          if (idx < kv) {
            scalar_t* dst = oi + (idx + 1) * d;
            if (hit[idx]) {
              for (int64_t c = 0; c < d; ++c) dst[c] += src[c];
            } else {
              hit[idx] = 1;
              std::memcpy(static_cast<void*>(dst), src, d * sizeof(scalar_t));
            }
          } else {
            for (int64_t c = 0; c < d; ++c) mi[c] += static_cast<acc_t>(src[c]);
          }
        }
        for (int64_t r = 0; r < kv; ++r)
          if (!hit[r]) std::memset(static_cast<void*>(oi + (r + 1) * d), 0, d * sizeof(scalar_t));
      }
    });
  });
  TORCH_CHECK(!bad, "remap: restore_backward: ids_restore holds an index outside [0, ", a.l, ")");
  at::Tensor gmask = (a.n == 0 ? at::zeros({a.d}, opts.dtype(acc_t)) : at::sum(part, 0)).to(a.grad.scalar_type());
  return {gx, gmask};
}

}  // namespace
}  // namespace remap

TORCH_LIBRARY(remap, m) {
  m.def("keep(Tensor x, Tensor ids_keep) -> Tensor");
  m.def("keep_backward(Tensor grad, Tensor ids_keep, SymInt length) -> Tensor");
  m.def("restore(Tensor x, Tensor ids_restore, Tensor mask_token, Tensor? pos=None) -> Tensor");
  m.def("restore_backward(Tensor grad, Tensor ids_restore, SymInt x_rows) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(remap, CPU, m) {
  m.impl("keep", &remap::keep_cpu);
  m.impl("keep_backward", &remap::keep_backward_cpu);
  m.impl("restore", &remap::restore_cpu);
  m.impl("restore_backward", &remap::restore_backward_cpu);
}
