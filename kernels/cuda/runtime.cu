// CUDA runtime plumbing: device discovery, the stream, host<->device copies, cuBLAS(Lt) handles.
#include <cuda_profiler_api.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "aria/kernels/backend.h"
#include "aria/kernels/cuda/check.h"
#include "aria/kernels/cuda/runtime.h"

namespace aria::cuda {

int device_count() {
  // Asked once: the answer cannot change while the process runs. Never throws.
  static const int count = [] {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();  // clear it so that later checks do not report it
      return 0;
    }
    return n;
  }();
  return count;
}

// ---- the process's GPU --------------------------------------------------------------------------
// cudaSetDevice is per host thread: the bound index is process-wide, and each thread that issues CUDA
// work makes it current once (enter_device, called by stream() and the lazily created resources).
namespace {
std::atomic<int> g_device{-1};
std::mutex g_device_mu;
thread_local int t_device = -1;

void bind_device(int index) {
  const int n = device_count();
  ARIA_CHECK(n > 0, "device cuda:", index, " requested but no CUDA GPU is visible; use --device cpu");
  ARIA_CHECK(index >= 0 && index < n, "device cuda:", index, " requested but only ", n,
             " GPU(s) are visible (cuda:0 to cuda:", n - 1, ")");
  std::lock_guard<std::mutex> lock(g_device_mu);
  const int bound = g_device.load();
  ARIA_CHECK(bound < 0 || bound == index, "device cuda:", index, " requested, but this process already runs on cuda:",
             bound, ": aria's CUDA backend drives one GPU per process (one stream, one set of cuBLAS handles, one "
             "memory cache); run one process per GPU");
  if (bound < 0) {
    ARIA_CUDA_CHECK(cudaSetDevice(index));
    t_device = index;
    g_device.store(index);
  }
}

// Makes the bound GPU (cuda:0 when none was chosen) current on the calling thread.
void enter_device() {
  int d = g_device.load(std::memory_order_acquire);
  if (d >= 0 && t_device == d) return;  // the common case: one thread-local compare
  if (d < 0) {
    bind_device(0);
    d = g_device.load();
  }
  if (t_device != d) {
    ARIA_CUDA_CHECK(cudaSetDevice(d));
    t_device = d;
  }
}
}  // namespace

void use_device(int index) {
  if (index == g_device.load(std::memory_order_acquire) && t_device == index) return;
  bind_device(index);
  enter_device();
}

int bound_device() { return g_device.load(); }

void synchronize() {
  if (device_count() == 0) return;
  ARIA_CUDA_CHECK(cudaStreamSynchronize(stream()));
  ARIA_CUDA_CHECK(cudaDeviceSynchronize());
}

void profiler_range(bool start) {
  if (device_count() == 0) return;
  ARIA_CUDA_CHECK(start ? cudaProfilerStart() : cudaProfilerStop());
}

cudaStream_t stream() {
  ARIA_CHECK(device_count() > 0, "CUDA backend used but no CUDA GPU is visible");
  enter_device();
  static cudaStream_t s = [] {
    cudaStream_t st = nullptr;
    ARIA_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamDefault));
    return st;
  }();
  return s;
}

const cudaDeviceProp& device_props() {
  static cudaDeviceProp props = [] {
    enter_device();
    cudaDeviceProp p;
    int dev = 0;
    ARIA_CUDA_CHECK(cudaGetDevice(&dev));
    ARIA_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
    return p;
  }();
  return props;
}

int num_sms() { return device_props().multiProcessorCount; }

namespace {
std::atomic<uint64_t> g_blocking_copies{0};

// Host->device copies of up to kStagedMax bytes (batches, ids, small tensors) go through a ring of
// pinned buffers and return at once: the source bytes are copied into a buffer whose earlier upload
// has finished, and the GPU copies from there in stream order. So uploading the next batch never
// waits for the GPU. Larger copies (weights) stay synchronous rather than pinning their size.
constexpr size_t kStagedMax = size_t(16) << 20;
constexpr int kStagingSlots = 16;

class UploadStaging {
 public:
  void upload(void* dst, const void* src, size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    Slot& s = slots_[next_];
    next_ = (next_ + 1) % kStagingSlots;
    if (!s.done) ARIA_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    else if (s.used) ARIA_CUDA_CHECK(cudaEventSynchronize(s.done));  // the host is 16 uploads ahead
    if (s.bytes < n) {
      if (s.host) ARIA_CUDA_CHECK(cudaFreeHost(s.host));
      s.host = nullptr;
      s.bytes = std::max<size_t>(n, 4096);
      ARIA_CUDA_CHECK(cudaMallocHost(&s.host, s.bytes));
    }
    std::memcpy(s.host, src, n);
    ARIA_CUDA_CHECK(cudaMemcpyAsync(dst, s.host, n, cudaMemcpyHostToDevice, stream()));
    ARIA_CUDA_CHECK(cudaEventRecord(s.done, stream()));
    s.used = true;
  }

 private:
  struct Slot {
    void* host = nullptr;
    size_t bytes = 0;
    cudaEvent_t done = nullptr;
    bool used = false;
  };
  std::mutex mu_;
  Slot slots_[kStagingSlots];
  int next_ = 0;
};

UploadStaging& staging() {
  static UploadStaging* s = new UploadStaging;  // never destroyed: uploads may outlive static destructors
  return *s;
}

CapturedGraph* recording();
}  // namespace

void memcpy_between(void* dst, Device dst_device, const void* src, Device src_device, size_t n) {
  if (n == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memmove(dst, src, n);
    return;
  }
  if (src_device.is_cpu() && !dst_device.is_cpu() && recording()) {
    // Recorded into a graph: the source must live as long as the graph (host_source_for_copy).
    ARIA_CUDA_CHECK(cudaMemcpyAsync(dst, host_source_for_copy(src, n), n, cudaMemcpyHostToDevice, stream()));
    return;
  }
  if (src_device.is_cpu() && !dst_device.is_cpu() && n <= kStagedMax) {
    staging().upload(dst, src, n);
    return;
  }
  // Unified addressing: the driver knows where each pointer lives. Pageable host memory is fine;
  // the stream sync makes the copy synchronous, as the interface promises.
  if (dst_device.is_cpu() || src_device.is_cpu()) g_blocking_copies.fetch_add(1, std::memory_order_relaxed);
  ARIA_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, stream()));
  ARIA_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

uint64_t blocking_copies() { return g_blocking_copies.load(std::memory_order_relaxed); }

// ---- CUDA graphs ---------------------------------------------------------------------------------
struct CapturedGraph {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  std::vector<void*> pinned;  // host sources of the recorded uploads (host_source_for_copy)
  ~CapturedGraph() {
    if (exec) (void)cudaGraphExecDestroy(exec);
    if (graph) (void)cudaGraphDestroy(graph);
    for (void* p : pinned) (void)cudaFreeHost(p);
  }
};

namespace {
CapturedGraph* g_recording = nullptr;  // the graph capture_graph() is recording, if any
CapturedGraph* recording() { return g_recording; }
}  // namespace

const void* host_source_for_copy(const void* src, size_t n) {
  if (!g_recording || n == 0) return src;
  void* p = nullptr;
  ARIA_CUDA_CHECK(cudaMallocHost(&p, n));
  g_recording->pinned.push_back(p);
  std::memcpy(p, src, n);
  return p;
}

std::shared_ptr<CapturedGraph> capture_graph(const std::function<void()>& fn) {
  ARIA_CHECK(!g_recording, "capture_graph: already recording a graph (nested capture)");
  auto g = std::make_shared<CapturedGraph>();
  // Relaxed: the caching allocator may still call cudaMalloc, and uploads cudaMallocHost, while
  // recording (neither is a stream operation).
  ARIA_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed));
  g_recording = g.get();
  try {
    fn();
  } catch (...) {
    g_recording = nullptr;
    cudaGraph_t broken = nullptr;
    (void)cudaStreamEndCapture(stream(), &broken);  // leaves the stream usable again
    if (broken) (void)cudaGraphDestroy(broken);
    (void)cudaGetLastError();
    throw;
  }
  g_recording = nullptr;
  ARIA_CUDA_CHECK(cudaStreamEndCapture(stream(), &g->graph));
  ARIA_CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0));
  ARIA_CUDA_CHECK(cudaGraphUpload(g->exec, stream()));
  return g;
}

void replay_graph(const CapturedGraph& g) { ARIA_CUDA_CHECK(cudaGraphLaunch(g.exec, stream())); }

// ---- cuBLAS / cuBLASLt -----------------------------------------------------------------------
// Handles and workspace are created on first use and deliberately never destroyed: destroying them
// from static destructors can run after the CUDA runtime has shut down.

cublasLtHandle_t lt_handle() {
  static cublasLtHandle_t h = [] {
    enter_device();
    cublasLtHandle_t x = nullptr;
    ARIA_CUBLAS_CHECK(cublasLtCreate(&x));
    return x;
  }();
  return h;
}

size_t lt_workspace_size() { return size_t(32) << 20; }  // 32 MiB: NVIDIA's advice for Hopper

void* lt_workspace() {
  static void* w = [] {
    enter_device();
    void* p = nullptr;
    ARIA_CUDA_CHECK(cudaMalloc(&p, lt_workspace_size()));
    return p;
  }();
  return w;
}

cublasHandle_t blas_handle() {
  static cublasHandle_t h = [] {
    enter_device();
    cublasHandle_t x = nullptr;
    ARIA_CUBLAS_CHECK(cublasCreate(&x));
    ARIA_CUBLAS_CHECK(cublasSetStream(x, stream()));
    ARIA_CUBLAS_CHECK(cublasSetPointerMode(x, CUBLAS_POINTER_MODE_HOST));
    return x;
  }();
  return h;
}

}  // namespace aria::cuda
