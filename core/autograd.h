// Tape-based reverse-mode autograd (in the spirit of micrograd, with a flat tape instead of a graph
// walk). Every differentiable op that sees an input requiring grad appends one Node to the
// thread's tape. Tensor::backward() seeds d(loss)=1 and runs the tape in reverse; each Node reads
// the gradients of its outputs and accumulates into the gradients of its inputs. Leaves keep their
// grad; intermediate gradients and saved activations are freed as soon as the walk passes them
// (unless retain_graph).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aria/core/tensor.h"

namespace aria {

struct Node {
  std::string name;              // op name, for error messages and debugging
  std::vector<Tensor> inputs;    // differentiable inputs (undefined entries are skipped)
  std::vector<std::weak_ptr<TensorImpl>> outputs;  // weak: the tape never keeps outputs alive
  // Given the gradients of the outputs (undefined where no gradient reached an output), returns
  // one gradient per input (undefined = none). Saved tensors live in the closure.
  std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)> backward;
};

class Tape {
 public:
  void record(Node node) { nodes_.push_back(std::move(node)); }
  size_t size() const { return nodes_.size(); }
  void clear() { nodes_.clear(); }
  // Runs the tape backward from `root` (already holding its seed gradient).
  void backward(const Tensor& root, bool retain_graph);

 private:
  std::vector<Node> nodes_;
};

Tape& tape();  // this thread's tape

// Gradient recording is on by default; NoGradGuard turns it off for a scope (evaluation, optimizer).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when grad is enabled and any of the given (defined) tensors requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Records an op: marks `outputs` as non-leaf tensors requiring grad and appends the node.
// Call only when needs_grad(...) is true.
void record_op(const std::string& name, std::vector<Tensor> inputs, const std::vector<Tensor>& outputs,
               std::function<std::vector<Tensor>(const std::vector<Tensor>&)> backward);

// dst.grad += g (allocating dst.grad on first use). g must have dst's shape.
void accumulate_grad(const Tensor& dst, const Tensor& g);

}  // namespace aria
