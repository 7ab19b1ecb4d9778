#include "ops/common.h"

#include <ATen/ExpandUtils.h>
#include <c10/util/Exception.h>

#include <algorithm>

namespace gleam::ops {

std::string num(int64_t v) { return std::to_string(v); }

std::string shape(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

namespace {

const char* type_name(at::ScalarType t) { return c10::toString(t); }

at::ScalarType real_of(at::ScalarType t) {
  return t == at::kComplexDouble ? at::kDouble : at::kFloat;
}

void check_tensor(const char* op, const char* name, const at::Tensor& t, const at::Tensor& ref, at::ScalarType want) {
  TORCH_CHECK(t.defined(), "gleam::", op, ": ", name, " is undefined");
  TORCH_CHECK(t.scalar_type() == want, "gleam::", op, ": ", name, " has dtype ", type_name(t.scalar_type()), ", expected ", type_name(want),
              " (all arguments must share one precision)");
  TORCH_CHECK(t.device() == ref.device(), "gleam::", op, ": ", name, " is on ", t.device().str(), ", expected ",
              ref.device().str(), " like the other arguments");
  TORCH_CHECK(t.is_contiguous(), "gleam::", op, ": ", name, " of shape ", shape(t.sizes()),
              " is not contiguous; call .contiguous() (the gleam_core.ops wrappers do)");
}

}  // namespace

SenseGeometry check_and_describe(const char* op, const at::Tensor& data, DataKind kind, const at::Tensor& maps,
                                 const at::Tensor& mask, at::IntArrayRef fft_dims) {
  const char* dname = kind == DataKind::kImage ? "x" : "y";
  TORCH_CHECK(data.defined(), "gleam::", op, ": ", dname, " is undefined");
  TORCH_CHECK(data.scalar_type() == at::kComplexFloat || data.scalar_type() == at::kComplexDouble, "gleam::", op,
              ": ", dname, " has dtype ", type_name(data.scalar_type()), ", expected complex64 or complex128");
  check_tensor(op, dname, data, data, data.scalar_type());
  check_tensor(op, "maps", maps, data, data.scalar_type());
  check_tensor(op, "mask", mask, data, real_of(data.scalar_type()));

  const int64_t nd = data.dim();
  TORCH_CHECK(nd == 4 || nd == 5, "gleam::", op, ": ", dname, " has shape ", shape(data.sizes()), ", expected ",
              kind == DataKind::kImage ? "(B, M, *S)" : "(B, C, *S)", " with 2 or 3 spatial axes");
  const int64_t ns = nd - 2;
  TORCH_CHECK(maps.dim() == nd + 1, "gleam::", op, ": maps has shape ", shape(maps.sizes()), ", expected (B, C, M, *S) with ",
              num(ns), " spatial axes like ", dname, " ", shape(data.sizes()));
  TORCH_CHECK(mask.dim() == nd, "gleam::", op, ": mask has shape ", shape(mask.sizes()), ", expected (B or 1, 1, *S) with ",
              num(ns), " spatial axes");

  SenseGeometry g;
  g.batch = data.size(0);
  g.coils = maps.size(1);
  g.sets = maps.size(2);
  TORCH_CHECK(g.batch > 0 && g.coils > 0 && g.sets > 0, "gleam::", op, ": empty batch, coil or map-set dimension (",
              dname, " ", shape(data.sizes()), ", maps ", shape(maps.sizes()), ")");
  if (kind == DataKind::kImage) {
    TORCH_CHECK(data.size(1) == g.sets, "gleam::", op, ": x has ", num(data.size(1)), " map sets (shape ", shape(data.sizes()),
                ") but maps has ", num(g.sets), " (shape ", shape(maps.sizes()), ")");
  } else {
    TORCH_CHECK(data.size(1) == g.coils, "gleam::", op, ": y has ", num(data.size(1)), " coils (shape ", shape(data.sizes()),
                ") but maps has ", num(g.coils), " (shape ", shape(maps.sizes()), ")");
  }
  TORCH_CHECK(maps.size(0) == g.batch || maps.size(0) == 1, "gleam::", op, ": maps batch size ", num(maps.size(0)),
              " does not match ", dname, " batch size ", num(g.batch));
  g.maps_batch_bcast = maps.size(0) == 1 && g.batch > 1;
  TORCH_CHECK(mask.size(0) == g.batch || mask.size(0) == 1, "gleam::", op, ": mask batch size ", num(mask.size(0)),
              " is neither 1 nor ", num(g.batch));
  TORCH_CHECK(mask.size(1) == 1, "gleam::", op, ": mask has shape ", shape(mask.sizes()),
              ", expected size 1 along the coil axis (dim 1)");
  g.mask_batch = mask.size(0) == g.batch && g.batch > 1;

  for (int64_t d : fft_dims)
    TORCH_CHECK(d >= -ns && d <= -1, "gleam::", op, ": fft_dims entry ", num(d), " is out of range; expected -", num(ns),
                " .. -1 (spatial axes of ", dname, ")");
  const int pad = static_cast<int>(3 - ns);  // 2D problems become (1, H, W)
  for (int64_t a = 0; a < ns; ++a) {
    const int ga = static_cast<int>(a) + pad;
    const int64_t n = data.size(2 + a);
    TORCH_CHECK(n > 0, "gleam::", op, ": ", dname, " has an empty spatial axis: ", shape(data.sizes()));
    g.n[ga] = n;
    g.fft[ga] = std::find(fft_dims.begin(), fft_dims.end(), a - ns) != fft_dims.end();
    const int64_t nm = maps.size(3 + a);
    const bool bcast_ok = ga == 0 && !g.fft[ga] && nm == 1;
    TORCH_CHECK(nm == n || bcast_ok, "gleam::", op, ": maps spatial shape ", shape(maps.sizes().slice(3)),
                " does not match ", dname, " spatial shape ", shape(data.sizes().slice(2)),
                " (only a leading non-transformed axis, such as cine frames, may have size 1)");
    if (bcast_ok && n > 1) g.maps_bcast0 = true;
    const int64_t nk = mask.size(2 + a);
    TORCH_CHECK(nk == n || nk == 1, "gleam::", op, ": mask spatial shape ", shape(mask.sizes().slice(2)),
                " does not broadcast to ", dname, " spatial shape ", shape(data.sizes().slice(2)));
    g.mask_n[ga] = nk;
  }
  return g;
}

void check_batch_param(const char* op, const char* name, const at::Tensor& p, const at::Tensor& like, int64_t batch) {
  check_tensor(op, name, p, like, real_of(like.scalar_type()));
  TORCH_CHECK(p.dim() == 0 || (p.dim() == 1 && p.size(0) == batch), "gleam::", op, ": ", name, " has shape ",
              shape(p.sizes()), ", expected () or (", num(batch), ",)");
}

void check_same_as(const char* op, const char* name, const at::Tensor& t, const char* ref_name,
                   const at::Tensor& ref) {
  check_tensor(op, name, t, ref, ref.scalar_type());
  TORCH_CHECK(shape(t.sizes()) == shape(ref.sizes()), "gleam::", op, ": ", name, " has shape ", shape(t.sizes()), ", expected ",
              shape(ref.sizes()), " like ", ref_name);
}

std::pair<SenseGeometry, bool> check_cg_solve(const at::Tensor& b, const at::Tensor& maps, const at::Tensor& mask,
                                              const at::Tensor& lam, const std::optional<at::Tensor>& x0,
                                              at::IntArrayRef fft_dims, int64_t iters) {
  const char* op = "cg_solve";
  const SenseGeometry g = check_and_describe(op, b, DataKind::kImage, maps, mask, fft_dims);
  check_batch_param(op, "lam", lam, b, g.batch);
  TORCH_CHECK(iters >= 0, "gleam::cg_solve: iters is ", num(iters), ", expected >= 0");
  const bool has_x0 = x0.has_value() && x0->defined();
  if (has_x0) check_same_as(op, "x0", *x0, "b", b);
  return {g, has_x0};
}

SenseGeometry check_maps_grad(const char* op, const at::Tensor& x, const at::Tensor& second, bool second_is_kspace,
                              const at::Tensor& maps, const at::Tensor& mask, at::IntArrayRef fft_dims) {
  const SenseGeometry g = check_and_describe(op, x, DataKind::kImage, maps, mask, fft_dims);
  if (second_is_kspace) {
    check_and_describe(op, second, DataKind::kKspace, maps, mask, fft_dims);
    TORCH_CHECK(second.size(0) == x.size(0) && shape(second.sizes().slice(2)) == shape(x.sizes().slice(2)), "gleam::",
                op, ": y has shape ", shape(second.sizes()), ", expected (B, C, *S) with B and S of x ",
                shape(x.sizes()));
  } else {
    check_same_as(op, "g", second, "x", x);
  }
  return g;
}

at::Tensor full_maps_grad(const at::Tensor& x, const at::Tensor& maps) {
  std::vector<int64_t> s = {x.size(0), maps.size(1), maps.size(2)};
  for (int64_t d = 2; d < x.dim(); ++d) s.push_back(x.size(d));
  return at::empty(s, x.options());
}

at::Tensor reduce_to_maps(const at::Tensor& full, const at::Tensor& maps) {
  return full.sizes() == maps.sizes() ? full : at::sum_to(full, maps.sizes()).contiguous();
}

}  // namespace gleam::ops
