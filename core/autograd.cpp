#include "aria/core/autograd.h"

#include <unordered_map>

#include "aria/kernels/backend.h"

namespace aria {

Tape& tape() {
  thread_local Tape t;
  return t;
}

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record_op(const std::string& name, std::vector<Tensor> inputs, const std::vector<Tensor>& outputs,
               std::function<std::vector<Tensor>(const std::vector<Tensor>&)> backward) {
  Node n;
  n.name = name;
  n.inputs = std::move(inputs);
  for (const Tensor& o : outputs) {
    o.impl().requires_grad = true;
    o.impl().is_leaf = false;
    n.outputs.push_back(o.impl_ptr());
  }
  n.backward = std::move(backward);
  tape().record(std::move(n));
}

// Takes g by value so that a gradient nobody else holds can be adopted without a copy. A
// gradient that shares its storage (a view, or the same tensor handed to two inputs) is cloned,
// because later accumulation writes into the stored gradient in place.
static void accumulate_owned(const Tensor& dst, Tensor g) {
  check_same_shape(dst, g, "gradient accumulation");
  if (g.dtype() != dst.dtype()) g = g.detach().to(dst.dtype());
  if (g.device() != dst.device()) g = g.detach().to(dst.device());
  auto& im = dst.impl();
  if (!im.grad) {
    bool exclusive = g.impl_ptr().use_count() == 1 && g.impl().storage.use_count() == 1 && g.is_contiguous();
    im.grad = exclusive ? g.impl_ptr() : g.clone().impl_ptr();
    im.grad->requires_grad = false;
    im.grad->is_leaf = true;
    return;
  }
  Tensor existing(im.grad);
  ARIA_DISPATCH(existing.device(), axpy, existing, g.contiguous(), 1.0);
}

void accumulate_grad(const Tensor& dst, const Tensor& g) { accumulate_owned(dst, g.detach()); }

void Tape::backward(const Tensor& root, bool retain_graph) {
  NoGradGuard no_grad;  // backward computations are not themselves recorded
  // The tape holds outputs only weakly and each node's inputs are released after it runs, so an
  // intermediate that received a gradient is kept alive here until its producing node has read it.
  std::unordered_map<const TensorImpl*, std::shared_ptr<TensorImpl>> pending;
  for (size_t i = nodes_.size(); i-- > 0;) {
    Node& n = nodes_[i];
    if (!n.backward) continue;
    std::vector<Tensor> grad_outputs;
    bool any = false;
    for (auto& w : n.outputs) {
      auto o = w.lock();
      if (o && o->grad) {
        grad_outputs.emplace_back(o->grad);
        any = true;
      } else {
        grad_outputs.emplace_back();
      }
    }
    if (!any) continue;
    std::vector<Tensor> grads = n.backward(grad_outputs);
    ARIA_CHECK(grads.size() == n.inputs.size(), "autograd: op ", n.name, " returned ", grads.size(),
               " gradients for ", n.inputs.size(), " inputs");
    grad_outputs.clear();
    if (!retain_graph) {
      // Free this node's saved activations and its outputs' gradients before accumulating, so that a
      // gradient passed straight through (add, reshape) can be adopted by its input without a copy.
      for (auto& w : n.outputs)
        if (auto o = w.lock(); o && !o->is_leaf) o->grad.reset();
      n.backward = nullptr;
    }
    for (auto& w : n.outputs)
      if (auto o = w.lock()) pending.erase(o.get());
    for (size_t j = 0; j < grads.size(); ++j) {
      const Tensor& in = n.inputs[j];
      if (!grads[j].defined() || !in.defined() || !in.requires_grad()) continue;
      Tensor g = std::move(grads[j]);
      accumulate_owned(in, std::move(g));
      if (!in.is_leaf()) pending.emplace(in.impl_ptr().get(), in.impl_ptr());
    }
    if (!retain_graph) n.inputs.clear();
  }
  if (retain_graph) {
    // Keep the tape, but not the intermediate gradients: a second backward starts from scratch.
    for (Node& n : nodes_)
      for (auto& w : n.outputs)
        if (auto o = w.lock(); o && !o->is_leaf) o->grad.reset();
  } else {
    nodes_.clear();
  }
  if (!root.is_leaf()) root.impl().grad.reset();
}

}  // namespace aria
