// Device discovery for the CUDA addon and the loader's `auto` choice.
#include <cuda_runtime.h>

#include "quanteval/cuda.h"

namespace quanteval {

std::vector<CudaDevice> cuda_devices(std::string* err) {
  std::vector<CudaDevice> out;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (err) *err = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
    cudaGetLastError();
    return out;
  }
  for (int i = 0; i < n; i++) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({p.name, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem});
  }
  return out;
}

int cuda_driver_version() {
  int v = 0;
  cudaDriverGetVersion(&v);
  return v;
}

int cuda_runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

}  // namespace quanteval
