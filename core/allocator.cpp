#include "core/allocator.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>

#include "kernels/kernels.h"

namespace aria {

namespace {

// Plain aligned malloc with byte accounting. 64-byte alignment suits AVX-512 and cache lines.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    size_t n = (nbytes + 63) / 64 * 64;
    if (n == 0) n = 64;
    void* p = std::aligned_alloc(64, n);
    if (!p) ARIA_FAIL("out of host memory allocating ", nbytes, " bytes");
    std::lock_guard<std::mutex> lock(mu_);
    stats_.current_bytes += nbytes;
    stats_.reserved_bytes += nbytes;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    ++stats_.num_allocs;
    ++stats_.num_system_allocs;
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    std::free(ptr);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.current_bytes -= nbytes;
    stats_.reserved_bytes -= nbytes;
  }
  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes = stats_.current_bytes;
  }

 private:
  mutable std::mutex mu_;
  AllocatorStats stats_;
};

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator a;
  return a;
}

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) return cpu_allocator();
  return cuda::device_allocator();
}

Storage::Storage(size_t n, Device d) : nbytes(n), device(d), allocator(&allocator_for(d)) {
  data = allocator->allocate(n);
}

Storage::~Storage() {
  if (data) allocator->deallocate(data, nbytes);
}

}  // namespace aria
