// Built only when the CUDA backend is off: every CUDA entry point fails with one clear message.
#include "aria/kernels/backend.h"

namespace aria::cuda {

[[noreturn]] static void no_cuda(const char* what) {
  ARIA_FAIL("this build of aria has no CUDA backend (", what,
            "); rebuild with nvcc available or use --device cpu");
}

#define ARIA_KERNEL(name, params, args) \
  void name params { no_cuda(#name); }
#include "aria/kernels/kernel_list.h"
#undef ARIA_KERNEL

Allocator& device_allocator() { no_cuda("device_allocator"); }
int device_count() { return 0; }
void use_device(int) { no_cuda("use_device"); }
int bound_device() { return -1; }
void synchronize() {}
void profiler_range(bool) {}
uint64_t blocking_copies() { return 0; }
void memcpy_between(void*, Device, const void*, Device, size_t) { no_cuda("memcpy_between"); }
struct CapturedGraph {};
std::shared_ptr<CapturedGraph> capture_graph(const std::function<void()>&) { no_cuda("capture_graph"); }
void replay_graph(const CapturedGraph&) { no_cuda("replay_graph"); }

}  // namespace aria::cuda
