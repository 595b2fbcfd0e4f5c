// Memory for tensor storage. Each device has one allocator; the CUDA one caches freed blocks so
// that the training loop never calls cudaMalloc after its first step (kernels/cuda/allocator.cu).
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>

#include "aria/core/device.h"

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

// What the host knew about the int32 values of a storage it filled itself (Tensor::from_ints onto
// a GPU): index checks (embedding ids, class targets) can then run without copying the values back,
// a read that would drain the GPU's queue every step. A view holds a subset of the values, so the
// summary of the whole storage still bounds it.
struct IntValueSummary {
  int64_t count = 0;       // values summarised (the whole storage)
  int32_t max = 0;         // largest value
  int64_t negatives = 0;   // how many are < 0
  int32_t neg_min = 0, neg_max = 0;  // smallest / largest negative value (when negatives > 0)
};

// A block of memory owned by one allocator; shared by every view of it.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Allocator* allocator = nullptr;
  // Set by Tensor::from_ints for device copies; cleared by Tensor::copy_from / fill_ (the only
  // in-place writers of such storages).
  std::optional<IntValueSummary> int_summary;

  Storage(size_t n, Device d);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

}  // namespace aria
