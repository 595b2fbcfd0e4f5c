// Caching device allocator. Sizes are rounded up (512 B granularity up to 1 MiB, 2 MiB above) and
// every freed block goes to a free list of its rounded size; the next request of that size takes it
// back without calling the driver. A training loop that repeats the same shapes therefore stops
// calling cudaMalloc after its first step, and never calls cudaFree (empty_cache() aside).
// Blocks are reused in stream order: all work runs on the one stream (runtime.cu), so a block freed
// by the host while a kernel still reads it is only handed to kernels queued after that one.
// When cudaMalloc fails, every cached block is released and the allocation retried once; a second
// failure throws aria::Error "CUDA out of memory: ...".
// Stats: current/peak count requested bytes; reserved counts bytes held from the driver.
#include <cstdio>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "aria/kernels/backend.h"
#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"

namespace aria::cuda {

namespace {

constexpr size_t kSmallLimit = size_t(1) << 20;  // up to 1 MiB: 512 B granularity
constexpr size_t kSmallRound = 512;
constexpr size_t kLargeRound = size_t(2) << 20;  // above: multiples of 2 MiB
constexpr size_t kMaxRequest = size_t(1) << 60;  // beyond any device; avoids overflow in rounding

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  if (n <= kSmallLimit) return (n + kSmallRound - 1) / kSmallRound * kSmallRound;
  return (n + kLargeRound - 1) / kLargeRound * kLargeRound;
}

double mib(size_t n) { return double(n) / double(1 << 20); }

class CachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.num_allocs;
    if (nbytes > kMaxRequest) oom(nbytes);
    const size_t size = round_size(nbytes);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= size;
    } else {
      p = system_alloc(size, nbytes);
    }
    live_[p] = size;
    stats_.current_bytes += nbytes;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) {  // called from destructors: report, never throw
      std::fprintf(stderr, "aria: CUDA allocator asked to free an unknown pointer %p\n", ptr);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    free_[size].push_back(ptr);
    cached_bytes_ += size;
    stats_.current_bytes -= nbytes;
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes = stats_.current_bytes;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

 private:
  void* system_alloc(size_t size, size_t requested) {
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky, but it must not surface in a later launch check
      release_cached_locked();
      e = cudaMalloc(&p, size);
      if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        oom(requested);
      }
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      cuda_fail(e, "cudaMalloc(&p, size)", __FILE__, __LINE__);
    }
    ++stats_.num_system_allocs;
    stats_.reserved_bytes += size;
    return p;
  }

  // Frees every cached block (mu_ held). cudaFree waits for the device, so no kernel still uses them.
  void release_cached_locked() {
    if (cached_bytes_ == 0) return;
    ARIA_CUDA_CHECK(cudaDeviceSynchronize());
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) {
        ARIA_CUDA_CHECK(cudaFree(p));
        stats_.reserved_bytes -= size;
      }
      blocks.clear();
    }
    free_.clear();
    cached_bytes_ = 0;
  }

  [[noreturn]] void oom(size_t requested) {
    size_t free_dev = 0, total_dev = 0;
    if (cudaMemGetInfo(&free_dev, &total_dev) != cudaSuccess) (void)cudaGetLastError();
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "CUDA out of memory: tried to allocate %.2f MiB (%.2f MiB in use, %.2f MiB cached, %.2f MiB free on "
                  "device of %.2f MiB)",
                  mib(requested), mib(stats_.current_bytes), mib(cached_bytes_), mib(free_dev), mib(total_dev));
    throw Error(buf);
  }

  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // rounded size -> cached blocks
  std::unordered_map<void*, size_t> live_;    // handed-out block -> rounded size
  size_t cached_bytes_ = 0;
  AllocatorStats stats_;
};

CachingAllocator& instance() {
  // Never destroyed: tensors in static storage may be freed after static destructors ran.
  static CachingAllocator* a = [] {
    ARIA_CHECK(device_count() > 0, "CUDA memory requested but no CUDA GPU is visible; use --device cpu");
    return new CachingAllocator();
  }();
  return *a;
}

}  // namespace

Allocator& device_allocator() { return instance(); }

void empty_cache() { instance().empty_cache(); }

}  // namespace aria::cuda
