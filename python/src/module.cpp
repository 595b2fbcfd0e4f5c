// The aria Python module (aria._core; the package python/aria re-exports it): one bind_* function
// per area (python/src/bindings.h). Errors first: every other area raises them; DLPack extends Tensor.
#include "bindings.h"
#include "tools/aria/environment.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "aria: a C++20/CUDA tensor engine that fine-tunes GPT-2 on task sequences (continual learning)";
  // The switches from the environment (ARIA_TF32, OMP_NUM_THREADS, ...), as the aria programs read them.
  aria::cli::read_environment(aria::context());
  using namespace aria::python;
  bind_errors(m);
  bind_tensor(m);
  bind_dlpack(m);
  bind_model(m);
  bind_pretrain(m);
  bind_data(m);
  bind_trainer(m);
  bind_method(m);
}
