// Where a tensor lives. One GPU index is carried for later multi-GPU work; today only index 0 is used.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

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

// Parses "cpu", "cuda", "cuda:0"; "auto" picks cuda when available. Throws aria::Error otherwise.
Device parse_device(const std::string& name);

}  // namespace aria
