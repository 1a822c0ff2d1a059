// The addon's entry point: registers each binding module. One module a layer (DESIGN.md): kernels for tests and
// benchmarks, the runtime's model/session objects. Built twice from the same sources: the CPU addon (node-gyp) and
// the CUDA addon (cmake-js, QUANTEVAL_CUDA defined).
#include <napi.h>

#include "args.h"
#include "modules.h"
#include "quanteval/cpu_features.h"
#include "quanteval/threadpool.h"
#ifdef QUANTEVAL_CUDA
#include "quanteval/cuda.h"
#endif

namespace quanteval::napi {
namespace {

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const auto& f = cpu_features();
  auto o = Napi::Object::New(env);
  o.Set("isa", isa_name(cpu_isa()));
  o.Set("threads", num_threads());
  auto feats = Napi::Object::New(env);
  feats.Set("avx2", f.avx2); feats.Set("fma", f.fma); feats.Set("f16c", f.f16c);
  feats.Set("avx512f", f.avx512f); feats.Set("avx512bw", f.avx512bw); feats.Set("avx512vl", f.avx512vl);
  feats.Set("avx512vnni", f.avx512vnni); feats.Set("avx512bf16", f.avx512bf16); feats.Set("avxvnni", f.avxvnni);
  o.Set("features", feats);
  o.Set("a8Dot", a8_dot_name(a8_dot()));
  o.Set("zmm", zmm_name(zmm_kernels()));
  o.Set("gemv", gemv_kernel_name(gemv_kernel()));
  return o;
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  set_num_threads((int)integer(info.Env(), arg(info, 0, "threads"), "threads", 1, 1024));
  return Napi::Number::New(info.Env(), num_threads());
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto s = string(env, arg(info, 0, "isa"), "isa");
  if (s == "scalar") set_isa_cap(Isa::Scalar);
  else if (s == "avx2") set_isa_cap(Isa::Avx2);
  else if (s == "avx512" || s == "auto") set_isa_cap(Isa::Avx512);
  else range_error(env, "isa: expected one of scalar, avx2, avx512, auto, got '" + s + "'");
  return Napi::String::New(env, isa_name(cpu_isa()));
}

// The int8 dot product of gemmW8A8's kernels (cpu_features.h A8DotMode); returns the one now in use.
Napi::Value SetA8Dot(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto s = string(env, arg(info, 0, "mode"), "mode");
  if (s == "auto") set_a8_dot_mode(A8DotMode::Auto);
  else if (s == "off") set_a8_dot_mode(A8DotMode::Off);
  else if (s == "emulate") set_a8_dot_mode(A8DotMode::Emulate);
  else range_error(env, "mode: expected one of auto, off, emulate, got '" + s + "'");
  return Napi::String::New(env, a8_dot_name(a8_dot()));
}

// The exact 4-/2-bit GEMV's kernel at M = 1 (cpu_features.h GemvKernel); returns the one now in use.
Napi::Value SetGemv(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto s = string(env, arg(info, 0, "kernel"), "kernel");
  if (s == "int" || s == "auto") set_gemv_kernel(GemvKernel::Int);
  else if (s == "fp32") set_gemv_kernel(GemvKernel::Fp32);
  else range_error(env, "kernel: expected one of int, fp32, auto, got '" + s + "'");
  return Napi::String::New(env, gemv_kernel_name(gemv_kernel()));
}

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
#ifdef QUANTEVAL_CUDA
  std::string err;
  auto devs = cuda_devices(&err);
  auto arr = Napi::Array::New(env, devs.size());
  for (size_t i = 0; i < devs.size(); i++) {
    auto d = Napi::Object::New(env);
    d.Set("name", devs[i].name);
    d.Set("computeCapability", std::to_string(devs[i].major) + "." + std::to_string(devs[i].minor));
    d.Set("memoryBytes", (double)devs[i].total_mem);
    d.Set("multiprocessors", devs[i].sm_count);
    arr.Set((uint32_t)i, d);
  }
  o.Set("compiled", true);
  o.Set("devices", arr);
  o.Set("driverVersion", cuda_driver_version());
  o.Set("runtimeVersion", cuda_runtime_version());
  if (!err.empty()) o.Set("error", err);
#else
  o.Set("compiled", false);
  o.Set("devices", Napi::Array::New(env, 0));
#endif
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#ifdef QUANTEVAL_CUDA
  exports.Set("variant", "cuda");
#else
  exports.Set("variant", "cpu");
#endif
  exports.Set("napiVersion", NAPI_VERSION);
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("setA8Dot", Napi::Function::New(env, SetA8Dot, "setA8Dot"));
  exports.Set("setGemv", Napi::Function::New(env, SetGemv, "setGemv"));
  init_kernel_bindings(env, exports);
  init_ops_bindings(env, exports);
  init_runtime_bindings(env, exports);
  init_calib_bindings(env, exports);
  return exports;
}

}  // namespace
}  // namespace quanteval::napi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return quanteval::napi::Init(env, exports); }
NODE_API_MODULE(quanteval, InitAddon)
