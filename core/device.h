// Where a tensor lives: the CPU or GPU N (cuda:N). A process runs on one GPU: the first tensor on
// cuda:N (or parse_device("cuda:N")) binds it to GPU N, and a tensor on another GPU is refused with an
// error (kernels/backend.h, cuda::use_device).
#pragma once
#include <cstdint>
#include <string>

#include "aria/core/error.h"

namespace aria {

enum class DeviceKind : uint8_t { CPU, CUDA };

struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;

  static Device cpu() { return {DeviceKind::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceKind::CUDA, i}; }
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool is_cuda() const { return kind == DeviceKind::CUDA; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// True when this build has the CUDA backend and a GPU is visible at run time.
bool cuda_available();

// Parses "cpu", "cuda" (= cuda:0), "cuda:N"; "auto" picks cuda when available. A CUDA device also
// selects that GPU for this process (cuda::use_device). Throws aria::Error for anything else, an index
// with no GPU, or a GPU other than the one this process already uses.
Device parse_device(const std::string& name);

}  // namespace aria
