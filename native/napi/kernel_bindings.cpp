// N-API bindings of the quantization and GEMM kernels (kernels.h), for the TypeScript layer (lib/kernels.ts), the
// tests and the benchmarks. Every function validates all of its arguments (args.h) and runs the kernel on the libuv
// pool, resolving a Promise; inputs are read in place (zero copy) and kept alive until then, outputs are JS-owned
// typed arrays allocated before the work starts.
//
//   quantizeRtn(W: Float32Array, N, K, format) -> Promise<{codes, scales, zeros?}>
//   dequantize(weight) -> Promise<Float32Array [N*K]>
//   fakeQuantAct(X: Float32Array, M, K, bits) -> Promise<Float32Array [M*K]>
//   gemm(X, xDtype, M, {N, K, dtype, data}, bias?, options?) -> Promise<Float32Array | timing>
//   gemmQ(X, xDtype, M, weight, bias?, options?) -> Promise<Float32Array | timing>
//   gemmW8A8(X: Float32Array, M, weight, bias?, options?) -> Promise<Float32Array | timing>  (any packed weight)
//   memReadBandwidth(bytes, reps) -> Promise<Float64Array seconds per pass>
// format = {bits, groupSize, symmetric, scaleDtype}; weight = {N, K, format, codes, scales, zeros?}.
// options = {impl?: "fast" | "ref", out?: Float32Array [M*N], timeReps?: integer}: with timeReps the kernel runs that
// many times and the Promise resolves to {y, seconds: Float64Array} (for the benchmarks: no N-API cost in the times).
#include <chrono>
#include <memory>
#include <vector>

#include "../cpu/gemm_impl.h"
#include "args.h"
#include "modules.h"
#include "quanteval/kernels.h"

namespace quanteval::napi {
namespace {

constexpr int64_t kMaxDim = (int64_t)1 << 30;  // any one of M, N, K
constexpr int64_t kMaxM = (int64_t)1 << 24;

bool present(const Napi::Value& v) { return !v.IsUndefined() && !v.IsNull(); }

// Element type of a float tensor given by name, restricted to `allowed` (e.g. {"f32", "bf16"}).
DType float_dtype_arg(Napi::Env env, const Napi::Value& v, const std::string& name, std::initializer_list<const char*> allowed) {
  const std::string s = string(env, v, name);
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return dtype_from_string(env, s, name);
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  range_error(env, name + ": expected one of " + list + ", got '" + s + "'");
}

// A float tensor of `count` elements in `dtype`: Float32Array for f32, Uint16Array (raw bits) for f16/bf16.
const void* float_tensor(Napi::Env env, const Napi::Value& v, const std::string& name, DType dtype, int64_t count) {
  if (dtype == DType::F32) return typed_array<float>(env, v, name, (size_t)count);
  return typed_array<uint16_t>(env, v, name, (size_t)count);
}

QuantFormat format_arg(Napi::Env env, const Napi::Value& v, const std::string& name) {
  Napi::Object o = object(env, v, name);
  QuantFormat f;
  f.bits = (int)integer(env, o.Get("bits"), name + ".bits", 0, 64);
  if (!valid_bits(f.bits)) range_error(env, name + ".bits: expected 2, 3, 4, 6 or 8, got " + std::to_string(f.bits));
  f.group_size = (int)integer(env, o.Get("groupSize"), name + ".groupSize", 1, kMaxDim);
  f.symmetric = boolean(env, o.Get("symmetric"), name + ".symmetric");
  f.scale_dtype = float_dtype_arg(env, o.Get("scaleDtype"), name + ".scaleDtype", {"f32", "f16", "bf16"});
  return f;
}

// A packed weight {N, K, format, codes, scales, zeros?}; `keep` collects the buffers to hold alive.
QuantWeight weight_arg(Napi::Env env, const Napi::Value& v, const std::string& name, std::vector<Napi::Value>& keep) {
  Napi::Object o = object(env, v, name);
  QuantWeight w;
  w.N = integer(env, o.Get("N"), name + ".N", 1, kMaxDim);
  w.K = integer(env, o.Get("K"), name + ".K", 1, kMaxDim);
  w.fmt = format_arg(env, o.Get("format"), name + ".format");
  const int64_t G = w.groups();
  w.codes = typed_array<uint8_t>(env, o.Get("codes"), name + ".codes", (size_t)(w.N * row_bytes(w.K, w.fmt.bits)));
  w.scales = float_tensor(env, o.Get("scales"), name + ".scales", w.fmt.scale_dtype, w.N * G);
  keep.push_back(o.Get("codes"));
  keep.push_back(o.Get("scales"));
  if (!w.fmt.symmetric) {
    w.zeros = typed_array<uint8_t>(env, o.Get("zeros"), name + ".zeros", (size_t)(w.N * G));
    keep.push_back(o.Get("zeros"));
  }
  return w;
}

const float* bias_arg(Napi::Env env, const Napi::Value& v, int64_t N, std::vector<Napi::Value>& keep) {
  if (!present(v)) return nullptr;
  keep.push_back(v);
  return typed_array<float>(env, v, "bias", (size_t)N);
}

struct Options {
  bool ref = false;
  int64_t time_reps = 0;
  Napi::Value out;
};
Options options_arg(Napi::Env env, const Napi::Value& v) {
  Options opt;
  if (!present(v)) return opt;
  Napi::Object o = object(env, v, "options");
  if (present(o.Get("impl"))) {
    const std::string s = string(env, o.Get("impl"), "options.impl");
    if (s != "ref" && s != "fast") range_error(env, "options.impl: expected 'fast' or 'ref', got '" + s + "'");
    opt.ref = s == "ref";
  }
  if (present(o.Get("timeReps"))) opt.time_reps = integer(env, o.Get("timeReps"), "options.timeReps", 1, 100000);
  if (present(o.Get("out"))) opt.out = o.Get("out");
  return opt;
}

// The output Y[M, N] (options.out or a fresh Float32Array).
Napi::Float32Array output(Napi::Env env, const Options& opt, int64_t count) {
  if (!opt.out.IsEmpty()) {
    typed_array<float>(env, opt.out, "options.out", (size_t)count);
    return opt.out.As<Napi::Float32Array>();
  }
  return Napi::Float32Array::New(env, (size_t)count);
}

// Runs `kernel` once (or timeReps times, timing each) off the JS thread.
Napi::Value run_kernel(Napi::Env env, const Options& opt, Napi::Float32Array y, std::function<void()> kernel,
                       std::vector<Napi::Value> keep) {
  auto secs = std::make_shared<std::vector<double>>();
  const int64_t reps = opt.time_reps;
  keep.push_back(y);
  auto yref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(y));
  return run_async(
      env,
      [kernel, reps, secs] {
        if (reps == 0) { kernel(); return; }
        for (int64_t r = 0; r < reps; r++) {
          auto t0 = std::chrono::steady_clock::now();
          kernel();
          secs->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
      },
      [reps, secs, yref](Napi::Env env) -> Napi::Value {
        Napi::Float32Array y = yref->Value();
        if (reps == 0) return y;
        auto o = Napi::Object::New(env);
        auto s = Napi::Float64Array::New(env, secs->size());
        for (size_t i = 0; i < secs->size(); i++) s[i] = (*secs)[i];
        o.Set("y", y);
        o.Set("seconds", s);
        return o;
      },
      keep);
}

Napi::Value QuantizeRtn(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const int64_t N = integer(env, arg(info, 1, "N"), "N", 1, kMaxDim);
  const int64_t K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
  const float* W = typed_array<float>(env, arg(info, 0, "W"), "W", (size_t)(N * K));
  const QuantFormat f = format_arg(env, arg(info, 3, "format"), "format");
  const int64_t G = n_groups(K, f.group_size);
  auto codes = Napi::Uint8Array::New(env, (size_t)(N * row_bytes(K, f.bits)));
  Napi::TypedArray scales = f.scale_dtype == DType::F32 ? (Napi::TypedArray)Napi::Float32Array::New(env, (size_t)(N * G))
                                                         : (Napi::TypedArray)Napi::Uint16Array::New(env, (size_t)(N * G));
  auto zeros = Napi::Uint8Array::New(env, f.symmetric ? 0 : (size_t)(N * G));
  uint8_t* c = codes.Data();
  void* s = static_cast<uint8_t*>(scales.ArrayBuffer().Data()) + scales.ByteOffset();
  uint8_t* z = f.symmetric ? nullptr : zeros.Data();
  auto result = Napi::Object::New(env);
  result.Set("codes", codes);
  result.Set("scales", scales);
  if (!f.symmetric) result.Set("zeros", zeros);
  auto rref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(result));
  return run_async(
      env, [=] { quantize_rtn_ref(W, N, K, f, c, s, z); },
      [rref](Napi::Env) -> Napi::Value { return rref->Value(); }, {info[0]});
}

Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  std::vector<Napi::Value> keep;
  const QuantWeight w = weight_arg(env, arg(info, 0, "weight"), "weight", keep);
  auto out = Napi::Float32Array::New(env, (size_t)(w.N * w.K));
  float* o = out.Data();
  keep.push_back(out);
  auto oref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(env, [w, o] { dequantize_ref(w, o); },
                   [oref](Napi::Env) -> Napi::Value { return oref->Value(); }, keep);
}

Napi::Value FakeQuantAct(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const int64_t M = integer(env, arg(info, 1, "M"), "M", 1, kMaxM);
  const int64_t K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
  const float* X = typed_array<float>(env, arg(info, 0, "X"), "X", (size_t)(M * K));
  const int bits = (int)integer(env, arg(info, 3, "bits"), "bits", 2, 8);
  auto out = Napi::Float32Array::New(env, (size_t)(M * K));
  float* o = out.Data();
  auto oref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(env, [=] { fake_quant_act_ref(X, M, K, bits, o); },
                   [oref](Napi::Env) -> Napi::Value { return oref->Value(); }, {info[0], out});
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const DType xd = float_dtype_arg(env, arg(info, 1, "xDtype"), "xDtype", {"f32", "bf16"});
  const int64_t M = integer(env, arg(info, 2, "M"), "M", 1, kMaxM);
  Napi::Object wo = object(env, arg(info, 3, "weight"), "weight");
  DenseWeight W;
  W.N = integer(env, wo.Get("N"), "weight.N", 1, kMaxDim);
  W.K = integer(env, wo.Get("K"), "weight.K", 1, kMaxDim);
  W.dtype = float_dtype_arg(env, wo.Get("dtype"), "weight.dtype", {"f32", "f16", "bf16"});
  W.data = float_tensor(env, wo.Get("data"), "weight.data", W.dtype, W.N * W.K);
  const void* X = float_tensor(env, info[0], "X", xd, M * W.K);
  std::vector<Napi::Value> keep = {info[0], wo.Get("data")};
  const float* bias = bias_arg(env, info.Length() > 4 ? info[4] : env.Undefined(), W.N, keep);
  const Options opt = options_arg(env, info.Length() > 5 ? info[5] : env.Undefined());
  auto y = output(env, opt, M * W.N);
  float* Y = y.Data();
  const bool ref = opt.ref;
  return run_kernel(env, opt, y, [=] { ref ? gemm_dense_ref(X, xd, M, W, bias, Y) : gemm_dense(X, xd, M, W, bias, Y); }, keep);
}

Napi::Value GemmQ(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const DType xd = float_dtype_arg(env, arg(info, 1, "xDtype"), "xDtype", {"f32", "bf16"});
  const int64_t M = integer(env, arg(info, 2, "M"), "M", 1, kMaxM);
  std::vector<Napi::Value> keep = {info[0]};
  const QuantWeight W = weight_arg(env, arg(info, 3, "weight"), "weight", keep);
  const void* X = float_tensor(env, info[0], "X", xd, M * W.K);
  const float* bias = bias_arg(env, info.Length() > 4 ? info[4] : env.Undefined(), W.N, keep);
  const Options opt = options_arg(env, info.Length() > 5 ? info[5] : env.Undefined());
  auto y = output(env, opt, M * W.N);
  float* Y = y.Data();
  const bool ref = opt.ref;
  return run_kernel(env, opt, y, [=] { ref ? gemm_q_ref(X, xd, M, W, bias, Y) : gemm_q(X, xd, M, W, bias, Y); }, keep);
}

Napi::Value GemmW8A8(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const int64_t M = integer(env, arg(info, 1, "M"), "M", 1, kMaxM);
  std::vector<Napi::Value> keep = {info[0]};
  const QuantWeight W = weight_arg(env, arg(info, 2, "weight"), "weight", keep);
  const float* X = typed_array<float>(env, info[0], "X", (size_t)(M * W.K));
  const float* bias = bias_arg(env, info.Length() > 3 ? info[3] : env.Undefined(), W.N, keep);
  const Options opt = options_arg(env, info.Length() > 4 ? info[4] : env.Undefined());
  auto y = output(env, opt, M * W.N);
  float* Y = y.Data();
  const bool ref = opt.ref;
  return run_kernel(env, opt, y, [=] { ref ? gemm_w8a8_ref(X, M, W, bias, Y) : gemm_w8a8(X, M, W, bias, Y); }, keep);
}

Napi::Value MemReadBandwidth(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const int64_t bytes = integer(env, arg(info, 0, "bytes"), "bytes", 1 << 20, (int64_t)1 << 36);
  const int reps = (int)integer(env, arg(info, 1, "reps"), "reps", 1, 1000);
  auto secs = std::make_shared<std::vector<double>>();
  return run_async(
      env, [=] { *secs = impl::read_bandwidth_seconds(bytes, reps); },
      [secs](Napi::Env env) -> Napi::Value {
        auto s = Napi::Float64Array::New(env, secs->size());
        for (size_t i = 0; i < secs->size(); i++) s[i] = (*secs)[i];
        return s;
      });
}

template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&] { return F(info); });
}

}  // namespace

void init_kernel_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("quantizeRtn", Napi::Function::New(env, Guarded<QuantizeRtn>, "quantizeRtn"));
  exports.Set("dequantize", Napi::Function::New(env, Guarded<Dequantize>, "dequantize"));
  exports.Set("fakeQuantAct", Napi::Function::New(env, Guarded<FakeQuantAct>, "fakeQuantAct"));
  exports.Set("gemm", Napi::Function::New(env, Guarded<Gemm>, "gemm"));
  exports.Set("gemmQ", Napi::Function::New(env, Guarded<GemmQ>, "gemmQ"));
  exports.Set("gemmW8A8", Napi::Function::New(env, Guarded<GemmW8A8>, "gemmW8A8"));
  exports.Set("memReadBandwidth", Napi::Function::New(env, Guarded<MemReadBandwidth>, "memReadBandwidth"));
}

}  // namespace quanteval::napi
