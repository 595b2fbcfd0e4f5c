// SPC buffers, penalty and its gradient (see train/continual/spc.h).
#include "aria/train/continual/spc.h"

#include <algorithm>
#include <cmath>

#include "aria/core/autograd.h"
#include "aria/core/ops.h"
#include "aria/core/ops_inplace.h"

namespace aria {

namespace {

std::map<std::string, Tensor> params_by_name(const ContinualModel& m) {
  std::map<std::string, Tensor> out;
  for (auto& [name, p] : m.named_parameters()) out.emplace(name, p);
  return out;
}

const Tensor& find_param(const std::map<std::string, Tensor>& params, const std::string& name, const char* what) {
  auto it = params.find(name);
  ARIA_CHECK(it != params.end(), what, ": the model has no parameter ", name, " (consolidated by SPC)");
  return it->second;
}

template <typename T>
double sum_products_cpu(const Tensor& a, const Tensor& b, const Tensor& c) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  const T* pc = c.defined() ? c.data<T>() : nullptr;
  const int64_t n = a.numel();
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= (int64_t(1) << 16))
  for (int64_t i = 0; i < n; ++i) s += double(pa[i]) * double(pb[i]) * (pc ? double(pc[i]) : 1.0);
  return s;
}

// Sums of products sum_i a_i b_i c_i (c undefined: 1), accumulated in double on the CPU; on other
// devices with the device's reductions, kept there until value() (one synchronisation).
class ProductSum {
 public:
  explicit ProductSum(bool wide = false) : wide_(wide) {}
  void add(double weight, const Tensor& a, const Tensor& b, const Tensor& c = Tensor()) {
    const Tensor ac = a.detach().contiguous(), bc = b.detach().contiguous();
    const Tensor cc = c.defined() ? c.detach().contiguous() : Tensor();
    if (ac.device().is_cpu() && ac.dtype() == DType::F64) {
      host_ += weight * sum_products_cpu<double>(ac, bc, cc);
      return;
    }
    if (ac.device().is_cpu() && ac.dtype() == DType::F32) {
      host_ += weight * sum_products_cpu<float>(ac, bc, cc);
      return;
    }
    NoGradGuard no_grad;
    Tensor prod = ops::mul(ac, bc);
    if (cc.defined()) prod = ops::mul(prod, cc);
    // wide: summed in float64 on the device (the bfloat16 path's float32 buffers); otherwise in the
    // data's dtype, as the float32 path always did.
    if (wide_ && prod.dtype() == DType::F32) prod = prod.to(DType::F64);
    Tensor s = ops::scale(ops::sum(prod), weight);
    device_ = device_.defined() ? ops::add(device_, s) : s;
  }
  double value() const { return host_ + (device_.defined() ? device_.item() : 0.0); }

 private:
  bool wide_ = false;
  double host_ = 0;
  Tensor device_;
};

Tensor scaled(const Tensor& x, double s) {
  NoGradGuard no_grad;
  return ops::affine(x, s, 0.0);
}

Tensor converted(const Tensor& x, DType dtype, Device device) {
  if (x.device() == device && x.dtype() == dtype) return x;
  Tensor y = Tensor::empty(x.shape(), dtype, device);
  y.copy_from(x);
  return y;
}

Tensor converted(const Tensor& x, const Tensor& like) { return converted(x, like.dtype(), like.device()); }

// A parameter's value in its buffers' dtype (a bfloat16 parameter as float32), detached.
Tensor as_buffer_dtype(const Tensor& p) {
  const Tensor d = p.detach().contiguous();
  return converted(d, spc_buffer_dtype(d.dtype()), d.device());
}

}  // namespace

DType spc_buffer_dtype(DType param) { return param == DType::BF16 ? DType::F32 : param; }

SpcState::Buffers& SpcState::on_device(const std::string& name, const Tensor& p) const {
  Buffers& b = buf_.at(name);
  ARIA_CHECK(b.A.shape() == p.shape(), "SPC: buffers of ", name, " are ", shape_str(b.A.shape()), ", the parameter is ",
             p.str());
  const DType dt = spc_buffer_dtype(p.dtype());
  b.A = converted(b.A, dt, p.device());
  b.B = converted(b.B, dt, p.device());
  return b;
}

void SpcState::consolidate(const FisherResult& f, const ContinualModel& m, double gamma) {
  ARIA_CHECK(std::isfinite(gamma) && gamma >= 0 && gamma <= 1, "SPC: gamma must be in [0, 1], got ", gamma);
  ARIA_CHECK(!f.fisher.empty(), "SPC: consolidate got an empty Fisher");
  const auto params = params_by_name(m);
  for (const auto& [name, F] : f.fisher) {
    const Tensor& p = find_param(params, name, "SPC consolidate");
    ARIA_CHECK(F.shape() == p.shape() && F.dtype() == spc_buffer_dtype(p.dtype()) && F.device() == p.device(),
               "SPC: Fisher of ", name, " is ", F.str(), ", the parameter is ", p.str(),
               p.dtype() == DType::BF16 ? " (a bfloat16 parameter's Fisher is float32)" : "");
  }
  if (gamma != 1.0) {
    for (auto& [name, b] : buf_) b.A = scaled(b.A, gamma), b.B = scaled(b.B, gamma);
    C_ *= gamma;
  }
  for (const auto& [name, F] : f.fisher) {
    const Tensor theta = as_buffer_dtype(params.at(name));  // the anchor theta*_t (bfloat16: as float32)
    const Tensor Fc = F.contiguous();
    const Device dev = theta.device();
    Tensor A = Fc.clone();
    Tensor B = Tensor::empty(theta.shape(), theta.dtype(), dev);
    ops::mul_into(Fc, theta, B);
    if (auto it = buf_.find(name); it != buf_.end()) {
      const Buffers& old = on_device(name, theta);
      ops::add_scaled_(A, old.A, 1.0);
      ops::add_scaled_(B, old.B, 1.0);
    }
    buf_[name] = Buffers{A, B};
    ProductSum c(params.at(name).dtype() == DType::BF16);
    c.add(1.0, Fc, theta, theta);
    C_ += c.value();
  }
  ++tasks_;
}

double SpcState::penalty(const ContinualModel& m, double lambda) const {
  if (buf_.empty()) return 0.0;
  const auto params = params_by_name(m);
  bool bf16 = false;
  for (const auto& entry : buf_) bf16 = bf16 || find_param(params, entry.first, "SPC penalty").dtype() == DType::BF16;
  ProductSum s(bf16);  // bfloat16 parameters: float32 buffers, summed in float64 on the device
  for (const auto& entry : buf_) {
    const Tensor theta = as_buffer_dtype(find_param(params, entry.first, "SPC penalty"));
    const Buffers& b = on_device(entry.first, theta);
    s.add(1.0, b.A, theta, theta);
    s.add(-2.0, b.B, theta);
  }
  return 0.5 * lambda * (s.value() + C_);
}

void SpcState::add_penalty_grad(const ContinualModel& m, double lambda) const {
  if (buf_.empty()) return;
  const auto params = params_by_name(m);
  // The fused row's operands, one list per (device, dtype): one spc_penalty_grad call (one launch on
  // the GPU) per group, in practice one for the whole model.
  struct Group {
    Device device;
    DType dtype;
    std::vector<Tensor> grads, As, ps, Bs;
  };
  std::vector<Group> groups;
  for (const auto& entry : buf_) {
    const Tensor& p = find_param(params, entry.first, "SPC penalty gradient");
    if (!p.requires_grad()) continue;
    const Buffers& b = on_device(entry.first, p);
    const Device dev = p.device();
    const Tensor pc = p.detach().contiguous();
    Tensor g = p.grad();
    if (g.defined() && (g.dtype() != p.dtype() || g.device() != dev || !g.is_contiguous())) {
      // A gradient the fused row cannot take (another dtype or device, a strided view): A p - B
      // first, then added in g's own dtype.
      Tensor d = Tensor::empty(p.shape(), b.A.dtype(), dev);
      ops::mul_into(b.A, converted(pc, b.A), d);
      ops::add_scaled_(d, b.B, -1.0);
      ops::add_scaled_(g, converted(d, g), lambda);
      continue;
    }
    if (!g.defined()) {
      g = Tensor::zeros(p.shape(), p.dtype(), dev);
      p.set_grad(g);
    }
    // g += lambda (A p - B) in one pass, with the other tensors of its group
    auto grp = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
      return x.device == dev && x.dtype == p.dtype();
    });
    if (grp == groups.end()) grp = groups.insert(groups.end(), Group{dev, p.dtype(), {}, {}, {}, {}});
    grp->grads.push_back(g);
    grp->As.push_back(b.A.contiguous());
    grp->ps.push_back(pc);
    grp->Bs.push_back(b.B.contiguous());
  }
  for (const Group& grp : groups) ops::add_spc_penalty_grad_(grp.grads, grp.As, grp.ps, grp.Bs, lambda);
}

std::vector<std::pair<std::string, Tensor>> SpcState::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, b] : buf_) {
    out.emplace_back("spc.A." + name, b.A);
    out.emplace_back("spc.B." + name, b.B);
  }
  out.emplace_back("spc.C", Tensor::from_vector({C_}, {1}, DType::F64));
  return out;
}

void SpcState::load_state(const std::map<std::string, Tensor>& tensors, int tasks) {
  ARIA_CHECK(tasks >= 0, "SPC load_state: negative task count ", tasks);
  std::map<std::string, Buffers> buf;
  double C = 0;
  bool have_c = false;
  for (const auto& [key, t] : tensors) {
    if (key.rfind("spc.", 0) != 0) continue;
    if (key == "spc.C") {
      ARIA_CHECK(t.numel() == 1, "SPC load_state: spc.C must hold one value, got ", t.str());
      C = t.to_doubles()[0];
      have_c = true;
    } else if (key.rfind("spc.A.", 0) == 0) {
      buf[key.substr(6)].A = t;
    } else if (key.rfind("spc.B.", 0) == 0) {
      buf[key.substr(6)].B = t;
    } else {
      ARIA_FAIL("SPC load_state: unknown tensor ", key, " (expected spc.A.<param>, spc.B.<param>, spc.C)");
    }
  }
  for (const auto& [name, b] : buf) {
    ARIA_CHECK(b.A.defined() && b.B.defined(), "SPC load_state: ", name, " has ", b.A.defined() ? "spc.A" : "spc.B",
               " but not ", b.A.defined() ? "spc.B" : "spc.A");
    ARIA_CHECK(b.A.shape() == b.B.shape() && b.A.dtype() == b.B.dtype() && is_floating(b.A.dtype()),
               "SPC load_state: spc.A.", name, " ", b.A.str(), " and spc.B.", name, " ", b.B.str(), " do not match");
  }
  ARIA_CHECK(tasks > 0 || (buf.empty() && !have_c) || (buf.empty() && C == 0.0),
             "SPC load_state: buffers given for 0 consolidated tasks");
  ARIA_CHECK(tasks == 0 || (have_c && !buf.empty()), "SPC load_state: ", tasks,
             " consolidated tasks but ", have_c ? "no spc.A / spc.B buffers" : "no spc.C");
  buf_ = std::move(buf);
  C_ = C;
  tasks_ = tasks;
}

}  // namespace aria
