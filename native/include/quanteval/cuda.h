// CUDA backend entry points visible to host C++ (compiled only into the CUDA addon and the CUDA tests).
#pragma once
#include <string>
#include <vector>

namespace quanteval {

struct CudaDevice {
  std::string name;
  int major = 0, minor = 0, sm_count = 0;
  size_t total_mem = 0;
};
// Devices visible to the CUDA runtime; on failure (no driver, no device) returns none and sets *err to the
// runtime's message.
std::vector<CudaDevice> cuda_devices(std::string* err);
int cuda_driver_version();
int cuda_runtime_version();

}  // namespace quanteval
