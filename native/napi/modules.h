// Binding modules registered by addon.cpp; each lives in its own file.
#pragma once
#include <napi.h>

namespace quanteval::napi {
void init_kernel_bindings(Napi::Env env, Napi::Object exports);   // kernel_bindings.cpp: quantize, GEMM/GEMV, W8A8
void init_ops_bindings(Napi::Env env, Napi::Object exports);      // ops_bindings.cpp: attention, norms, RoPE, ...
void init_runtime_bindings(Napi::Env env, Napi::Object exports);  // runtime_bindings.cpp: models, sessions
void init_calib_bindings(Napi::Env env, Napi::Object exports);    // calib_bindings.cpp: GPTQ, AWQ, SmoothQuant
}  // namespace quanteval::napi
