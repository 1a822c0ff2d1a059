// Shared CUDA helpers: every CUDA call is checked and turned into a C++ exception carrying file and line, which
// the N-API layer turns into a JS error (never an abort).
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace quanteval::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
  throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorString(e) + " (" + file + ":" +
                           std::to_string(line) + ")");
}

#define QE_CUDA_CHECK(call)                                                        \
  do {                                                                             \
    cudaError_t qe_err_ = (call);                                                  \
    if (qe_err_ != cudaSuccess) ::quanteval::cuda::throw_cuda(qe_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a launch: the launch configuration error, if any.
#define QE_CUDA_LAUNCH_CHECK() QE_CUDA_CHECK(cudaGetLastError())

}  // namespace quanteval::cuda
