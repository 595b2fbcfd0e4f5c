#include "aria/core/allocator.h"

#include <map>
#include <cstdlib>
#include <mutex>
#include <new>

#include "aria/kernels/backend.h"

namespace aria {

namespace {

// Aligned host memory with a cache of freed blocks by rounded size. Training allocates the same
// activation sizes every step; returning them to the OS and faulting fresh pages back in cost more
// than the kernels themselves on small machines (docs/perf.md).
class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    const size_t n = round(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.num_allocs;
    auto it = free_.find(n);
    void* p = nullptr;
    if (it != free_.end()) {
      p = it->second;
      free_.erase(it);
      cached_bytes_ -= n;
    } else {
      p = std::aligned_alloc(64, n);
      if (!p) {
        release_cache();
        p = std::aligned_alloc(64, n);
      }
      if (!p) ARIA_FAIL("out of host memory allocating ", nbytes, " bytes");
      stats_.reserved_bytes += n;
      ++stats_.num_system_allocs;
    }
    stats_.current_bytes += n;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    return p;
  }
  void deallocate(void* ptr, size_t nbytes) override {
    const size_t n = round(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.current_bytes -= n;
    if (n <= kMaxCachedBlock && cached_bytes_ + n <= kMaxCachedTotal) {
      free_.emplace(n, ptr);
      cached_bytes_ += n;
    } else {
      std::free(ptr);
      stats_.reserved_bytes -= n;
    }
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
  static constexpr size_t kMaxCachedBlock = size_t(1) << 30;   // larger blocks go straight back
  static constexpr size_t kMaxCachedTotal = size_t(4) << 30;   // cap on idle cached memory
  // 64-byte granularity for small blocks, 4 KiB (a page) above 64 KiB, so sizes repeat exactly.
  static size_t round(size_t n) {
    if (n == 0) n = 1;
    const size_t g = n > 65536 ? 4096 : 64;
    return (n + g - 1) / g * g;
  }
  void release_cache() {
    for (auto& [n, p] : free_) {
      std::free(p);
      stats_.reserved_bytes -= n;
    }
    free_.clear();
    cached_bytes_ = 0;
  }
  mutable std::mutex mu_;
  AllocatorStats stats_;
  std::multimap<size_t, void*> free_;
  size_t cached_bytes_ = 0;
};

}  // namespace

// Never destroyed: tensors held by other static objects may be freed after static destructors have
// begun, and the cached blocks stay reachable through it (leak checkers see them as live, not lost).
Allocator& cpu_allocator() {
  static CpuAllocator* a = new CpuAllocator;
  return *a;
}

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) return cpu_allocator();
  cuda::use_device(d.index);  // cuda:N binds the process to GPU N, or is refused (one GPU per process)
  return cuda::device_allocator();
}

Storage::Storage(size_t n, Device d) : nbytes(n), device(d), allocator(&allocator_for(d)) {
  data = allocator->allocate(n);
}

Storage::~Storage() {
  if (data) allocator->deallocate(data, nbytes);
}

}  // namespace aria
