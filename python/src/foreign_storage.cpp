// Storage over borrowed memory (foreign_storage.h). aria's Storage frees through its Allocator, so
// borrowed memory gets a one-shot allocator of its own whose deallocate() runs the release
// function and deletes itself; the Storage is otherwise an ordinary one (no change to core/).
#include "foreign_storage.h"

#include "bindings.h"

namespace aria::python {

namespace {

class BorrowedBlock final : public Allocator {
 public:
  explicit BorrowedBlock(std::function<void()> release) : release_(std::move(release)) {}
  void* allocate(size_t) override { throw Error("borrowed memory cannot allocate"); }
  void deallocate(void*, size_t) override {
    std::function<void()> release = std::move(release_);
    delete this;
    if (release) release();
  }
  AllocatorStats stats() const override { return {}; }
  void reset_peak() override {}

 private:
  std::function<void()> release_;
};

}  // namespace

std::shared_ptr<Storage> foreign_storage(void* data, size_t nbytes, Device device, std::function<void()> release) {
  ARIA_CHECK(data != nullptr, "foreign_storage: null data");
  // A zero-byte CPU storage is the cheapest ordinary one; its block goes back at once and the fields
  // are pointed at the borrowed memory.
  auto s = std::make_shared<Storage>(0, Device::cpu());
  s->allocator->deallocate(s->data, 0);
  s->data = data;
  s->nbytes = nbytes;
  s->device = device;
  s->allocator = new BorrowedBlock(std::move(release));
  return s;
}

Tensor tensor_over(std::shared_ptr<Storage> storage, DType dtype, const Shape& shape, const Shape& strides,
                   int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->dtype = dtype;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  return Tensor(std::move(impl));
}

size_t view_extent_bytes(const Shape& shape, const Shape& strides, DType dtype) {
  int64_t last = 0;
  for (size_t i = 0; i < shape.size(); ++i) last += (shape[i] - 1) * strides[i];
  return size_t(last + 1) * dtype_size(dtype);
}

DType dtype_arg(const std::string& name) {
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I32, DType::I64})
    if (name == dtype_name(t)) return t;
  throw InputError("unknown dtype '" + name + "' (float32, float64, float16, bfloat16, int32, int64)");
}

}  // namespace aria::python
