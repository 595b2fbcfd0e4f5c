#include "aria/core/device.h"

#include "aria/kernels/backend.h"

namespace aria {

bool cuda_available() { return cuda::device_count() > 0; }

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu();
  if (name == "auto") return cuda_available() ? parse_device("cuda") : Device::cpu();
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (name.size() > 5) {
      try {
        size_t used = 0;
        index = std::stoi(name.substr(5), &used);
        ARIA_CHECK(used == name.size() - 5 && index >= 0, "bad device '", name, "'");
      } catch (const std::logic_error&) {
        ARIA_FAIL("bad device '", name, "': expected cpu, cuda or cuda:N");
      }
    }
    int n = cuda::device_count();
    ARIA_CHECK(n > 0, "device '", name, "' requested but no CUDA GPU is available (",
#ifdef ARIA_WITH_CUDA
               "none visible to the driver"
#else
               "this build has no CUDA backend"
#endif
               "); use --device cpu");
    ARIA_CHECK(index < n, "device '", name, "' requested but only ", n, " GPU(s) are visible");
    cuda::use_device(index);
    return Device::cuda(index);
  }
  ARIA_FAIL("unknown device '", name, "': expected cpu, cuda, cuda:N or auto");
}

}  // namespace aria
