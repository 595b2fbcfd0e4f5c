// CUDA runtime pieces: error-check macros, the caching allocator (reuse, stats, out-of-memory),
// host<->device copies. Tests that need a GPU skip visibly without one.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "aria/core/ops.h"
#include "aria/core/tensor.h"
#include "aria/kernels/backend.h"
#include "tests/support/test_util.h"
#ifdef ARIA_WITH_CUDA
#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"
#endif

using namespace aria;
using testing::gpu_or_skip;

TEST_CASE("device_count never throws and cuda_available agrees with it") {
  int n = -1;
  CHECK_NOTHROW(n = cuda::device_count());
  CHECK(n >= 0);
  CHECK(cuda_available() == (n > 0));
  CHECK_NOTHROW(cuda::synchronize());
}

TEST_CASE("parse_device refuses malformed names and GPUs that are not there") {
  CHECK(parse_device("cpu") == Device::cpu());
  CHECK_THROWS_WITH(parse_device("gpu"), doctest::Contains("expected cpu, cuda, cuda:N or auto"));
  CHECK_THROWS_WITH(parse_device("cuda:x"), doctest::Contains("bad device 'cuda:x'"));
  CHECK_THROWS_WITH(parse_device("cuda:-1"), doctest::Contains("bad device 'cuda:-1'"));
  CHECK_THROWS_WITH(parse_device("cuda:1x"), doctest::Contains("bad device 'cuda:1x'"));
  // One past the last GPU (cuda:0 without any): refused by name, as is a tensor there.
  const int n = cuda::device_count();
  const std::string past = "cuda:" + std::to_string(n);
  CHECK_THROWS_WITH(parse_device(past), doctest::Contains(("device '" + past + "' requested").c_str()));
  CHECK_THROWS_AS(Tensor::zeros({4}, DType::F32, Device::cuda(n)), Error);
}

#ifdef ARIA_WITH_CUDA

TEST_CASE("cuda:N binds the process to GPU N, every thread works there, another GPU is refused") {
  if (!gpu_or_skip("cuda:N device selection")) return;
  const int n = cuda::device_count();
  const int want = n >= 2 ? 1 : 0;  // the second GPU when there is one
  if (cuda::bound_device() >= 0 && cuda::bound_device() != want) {
    // Earlier cases of this process used cuda:0 (the whole binary run at once); ctest runs each alone.
    testing::skip_case("process already bound", "cuda:N selection needs a process of its own (ctest runs one)");
    return;
  }
  const Device d = parse_device("cuda:" + std::to_string(want));
  CHECK(d == Device::cuda(want));
  CHECK(cuda::bound_device() == want);
  Tensor t = Tensor::full({256}, 2.0, DType::F32, d);
  cudaPointerAttributes attr{};
  REQUIRE(cudaPointerGetAttributes(&attr, t.raw_data()) == cudaSuccess);
  CHECK(attr.device == want);
  CHECK(ops::sum(t).item() == 512.0);
  int current = -1, in_thread = -1;
  double thread_sum = 0;
  std::thread worker([&] {  // a fresh host thread: cudaSetDevice is per thread
    Tensor u = Tensor::full({8}, 1.0, DType::F32, d);
    thread_sum = ops::sum(u).item();
    (void)cudaGetDevice(&in_thread);
  });
  worker.join();
  REQUIRE(cudaGetDevice(&current) == cudaSuccess);
  CHECK(current == want);
  CHECK(in_thread == want);
  CHECK(thread_sum == 8.0);
  if (n >= 2) {
    const int other = 1 - want;
    CHECK_THROWS_WITH(Tensor::zeros({4}, DType::F32, Device::cuda(other)),
                      doctest::Contains(("already runs on cuda:" + std::to_string(want)).c_str()));
    CHECK_THROWS_WITH(parse_device("cuda:" + std::to_string(other)), doctest::Contains("one GPU per process"));
  }
}

TEST_CASE("ARIA_CUDA_CHECK and ARIA_CUBLAS_CHECK report the call, the error and file:line") {
  // Needs no GPU: the error strings come from the runtime library alone.
  const int line = __LINE__ + 2;
  try {
    ARIA_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL("no exception");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find("test_cuda_runtime.cpp:" + std::to_string(line)) != std::string::npos);
    CHECK(msg.find("cudaErrorInvalidValue") != std::string::npos);
  }
  try {
    ARIA_CUBLAS_CHECK(CUBLAS_STATUS_INVALID_VALUE);
    FAIL("no exception");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find("test_cuda_runtime.cpp:") != std::string::npos);
    CHECK(msg.find("CUBLAS_STATUS_INVALID_VALUE") != std::string::npos);
  }
}

TEST_CASE("caching allocator: the same sizes again cause no new cudaMalloc, stats track current and peak") {
  if (!gpu_or_skip("caching allocator reuse")) return;
  Allocator& a = cuda::device_allocator();
  const std::vector<size_t> sizes = {1, 100, 512, 513, 4096, 1000000, (size_t(3) << 20) + 5, size_t(64) << 20};
  size_t total = 0;
  for (size_t s : sizes) total += s;

  auto round = [&]() {
    std::vector<void*> ptrs;
    for (size_t s : sizes) {
      void* p = a.allocate(s);
      REQUIRE(p != nullptr);
      ptrs.push_back(p);
    }
    for (size_t i = 0; i < ptrs.size(); ++i) a.deallocate(ptrs[i], sizes[i]);
  };
  round();  // first round may go to the driver
  const AllocatorStats before = a.stats();
  a.reset_peak();
  const AllocatorStats reset = a.stats();
  CHECK(reset.peak_bytes == reset.current_bytes);
  for (int r = 0; r < 5; ++r) round();
  const AllocatorStats after = a.stats();
  CHECK(after.num_system_allocs == before.num_system_allocs);
  CHECK(after.num_allocs == before.num_allocs + 5 * sizes.size());
  CHECK(after.current_bytes == before.current_bytes);
  CHECK(after.peak_bytes == before.current_bytes + total);
  CHECK(after.reserved_bytes >= after.current_bytes + total);

  // Tensors go through the same allocator.
  const AllocatorStats t0 = a.stats();
  {
    Tensor t = Tensor::empty({1000, 1000}, DType::F32, Device::cuda(0));
    CHECK(a.stats().current_bytes == t0.current_bytes + 4000000);
  }
  CHECK(a.stats().current_bytes == t0.current_bytes);
}

TEST_CASE("out of memory is a clear aria::Error, and the allocator still works after it") {
  if (!gpu_or_skip("out-of-memory error")) return;
  Allocator& a = cuda::device_allocator();
  bool threw = false;
  try {
    (void)a.allocate(size_t(1) << 50);  // 1 PiB
  } catch (const Error& e) {
    threw = true;
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find("out of memory") != std::string::npos);
    CHECK(msg.find("MiB") != std::string::npos);
  }
  CHECK(threw);
  CHECK(cudaGetLastError() == cudaSuccess);  // the failed cudaMalloc left no error behind
  void* p = a.allocate(1024);
  CHECK(p != nullptr);
  a.deallocate(p, 1024);
  // Tensor::empty reports the same error.
  CHECK_THROWS_WITH_AS(Tensor::empty({int64_t(1) << 48}, DType::F32, Device::cuda(0)),
                       doctest::Contains("out of memory"), Error);
}

TEST_CASE("memcpy_between: host -> device -> device -> host round trips bit-exactly") {
  if (!gpu_or_skip("memcpy round trips")) return;
  const size_t n = 1000003;
  std::vector<float> h(n), back(n, -1.f);
  for (size_t i = 0; i < n; ++i) h[i] = float(i) * 0.5f - 3.25f;
  Allocator& a = cuda::device_allocator();
  void* d1 = a.allocate(n * 4);
  void* d2 = a.allocate(n * 4);
  cuda::memcpy_between(d1, Device::cuda(0), h.data(), Device::cpu(), n * 4);
  cuda::memcpy_between(d2, Device::cuda(0), d1, Device::cuda(0), n * 4);
  cuda::memcpy_between(back.data(), Device::cpu(), d2, Device::cuda(0), n * 4);
  CHECK(back == h);
  std::vector<float> h2(n, 0.f);
  cuda::memcpy_between(h2.data(), Device::cpu(), h.data(), Device::cpu(), n * 4);
  CHECK(h2 == h);
  cuda::memcpy_between(d1, Device::cuda(0), h.data(), Device::cpu(), 0);  // empty copies are fine
  a.deallocate(d1, n * 4);
  a.deallocate(d2, n * 4);

  // Through tensors: dtype conversions and strided views on the device.
  Tensor x = Tensor::from_floats({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor g = x.to(Device::cuda(0));
  CHECK(g.device().is_cuda());
  CHECK(g.to_floats() == x.to_floats());
  CHECK(g.transpose(0, 1).contiguous().to_floats() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(g.to(DType::F64).to_doubles() == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(g.to(DType::BF16).to(DType::F32).to_floats() == x.to_floats());
  CHECK(g.to(DType::F16).to(DType::F32).to_floats() == x.to_floats());
  Tensor i = Tensor::from_ints({7, -8, 9}, {3}, Device::cuda(0));
  CHECK(i.to(DType::F32).to_floats() == std::vector<float>{7, -8, 9});
  CHECK(i.to(DType::I64).to_doubles() == std::vector<double>{7, -8, 9});
  Tensor f = Tensor::full({5}, 2.5, DType::F32, Device::cuda(0));
  CHECK(f.to_floats() == std::vector<float>(5, 2.5f));
  Tensor fb = Tensor::full({3}, -1.5, DType::BF16, Device::cuda(0));
  CHECK(fb.to_floats() == std::vector<float>(3, -1.5f));
}

TEST_CASE("empty_cache returns cached blocks to the driver") {
  if (!gpu_or_skip("empty_cache")) return;
  Allocator& a = cuda::device_allocator();
  void* p = a.allocate(size_t(16) << 20);
  a.deallocate(p, size_t(16) << 20);
  const size_t reserved = a.stats().reserved_bytes;
  cuda::empty_cache();
  CHECK(a.stats().reserved_bytes < reserved);
  CHECK(a.stats().reserved_bytes >= a.stats().current_bytes);
}

// A recorded graph runs nothing until replayed, then reads the tensors' contents at replay time; the
// descriptor array that sum_squares uploads from a host vector is still there at every replay (it
// was copied into pinned memory the graph owns).
TEST_CASE("capture_graph: replays read current contents, uploads outlive the recording") {
  if (!gpu_or_skip("CUDA graphs")) return;
  const Device g = Device::cuda(0);
  Tensor a = Tensor::from_floats({1, 2, 3}, {3}, g), b = Tensor::from_floats({4, 5}, {2}, g);
  Tensor out = Tensor::zeros({1}, DType::F64, g);
  auto graph = cuda::capture_graph([&] { cuda::sum_squares({a, b}, out); });
  cuda::synchronize();
  CHECK(out.to_doubles() == std::vector<double>{0});  // recording ran nothing
  cuda::replay_graph(*graph);
  CHECK(out.to_doubles() == std::vector<double>{55});  // 1 + 4 + 9 + 16 + 25
  const std::vector<float> a2 = {10, 0, 0};
  cuda::memcpy_between(a.raw_data(), g, a2.data(), Device::cpu(), a2.size() * sizeof(float));
  cuda::replay_graph(*graph);
  cuda::replay_graph(*graph);
  CHECK(out.to_doubles() == std::vector<double>{55 + 2 * (100 + 41)});
}

TEST_CASE("capture_graph: a throwing or host-reading body is an error, and the stream works afterwards") {
  if (!gpu_or_skip("CUDA graph errors")) return;
  const Device g = Device::cuda(0);
  Tensor a = Tensor::from_floats({3, 4}, {2}, g);
  CHECK_THROWS_WITH(cuda::capture_graph([] { ARIA_FAIL("stop here"); }), doctest::Contains("stop here"));
  CHECK_THROWS_AS(cuda::capture_graph([&] { (void)a.to_floats(); }), Error);  // waits for the GPU
  CHECK_THROWS_WITH(cuda::capture_graph([] { (void)cuda::capture_graph([] {}); }), doctest::Contains("nested"));
  Tensor out = Tensor::zeros({1}, DType::F64, g);
  cuda::sum_squares({a}, out);
  CHECK(out.to_doubles() == std::vector<double>{25});
}

#else

TEST_CASE("CUDA runtime tests") {
  // Prints "SKIPPED (no CUDA GPU): ...": ctest reports the case as skipped.
  testing::skip_case("no CUDA GPU", "this build has no CUDA backend; CUDA runtime tests not built");
}

#endif
