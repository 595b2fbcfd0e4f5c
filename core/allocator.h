// Memory for tensor storage. Each device has one allocator; the CUDA one caches freed blocks so
// that the training loop never calls cudaMalloc after its first step (kernels/cuda/allocator.cu).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace aria {

struct AllocatorStats {
  size_t current_bytes = 0;   // bytes handed out and not yet returned
  size_t peak_bytes = 0;      // high-water mark of current_bytes
  size_t reserved_bytes = 0;  // bytes held from the system (>= current for caching allocators)
  uint64_t num_allocs = 0;    // calls to allocate()
  uint64_t num_system_allocs = 0;  // calls that went to the system (malloc / cudaMalloc)
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
};

Allocator& cpu_allocator();
Allocator& allocator_for(Device d);  // the CUDA one throws a clear error in a build without CUDA

// A block of memory owned by one allocator; shared by every view of it.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Allocator* allocator = nullptr;

  Storage(size_t n, Device d);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

}  // namespace aria
