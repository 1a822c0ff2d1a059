// N-API surface of the runtime (native/runtime): `Model` (weights, quantization hooks, calibration capture) and
// `Session` (KV caches, prefill / decode / scoring). One call per model step; every step returns a Promise.
// lib/model/native-types.ts documents the JS side of each method.
#include <algorithm>
#include <cstring>
#include <map>
#include <type_traits>
#include <memory>

#include "../runtime/model.h"
#include "quanteval/threadpool.h"
#include "args.h"
#include "modules.h"

namespace quanteval::napi {
namespace {

using rt::ActMode;

double num_field(Napi::Env env, Napi::Object o, const char* k, const std::string& where, double dflt, bool required) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) type_error(env, where + "." + k + ": required");
    return dflt;
  }
  return number(env, v, where + "." + k);
}
int64_t int_field(Napi::Env env, Napi::Object o, const char* k, const std::string& where, int64_t dflt, bool required,
                  int64_t lo = 0, int64_t hi = INT32_MAX) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) type_error(env, where + "." + k + ": required");
    return dflt;
  }
  return integer(env, v, where + "." + k, lo, hi);
}
bool bool_field(Napi::Env env, Napi::Object o, const char* k, const std::string& where, bool dflt) {
  Napi::Value v = o.Get(k);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  return boolean(env, v, where + "." + k);
}

QuantFormat read_format(Napi::Env env, const Napi::Value& v, const std::string& name) {
  auto o = object(env, v, name);
  QuantFormat f;
  f.bits = (int)int_field(env, o, "bits", name, 4, true, 2, 8);
  if (!valid_bits(f.bits)) range_error(env, name + ".bits: expected 2, 3, 4, 6 or 8, got " + std::to_string(f.bits));
  f.group_size = (int)int_field(env, o, "groupSize", name, 0, true, 1, INT32_MAX);
  f.symmetric = bool_field(env, o, "symmetric", name, false);
  Napi::Value sd = o.Get("scaleDtype");
  f.scale_dtype = sd.IsUndefined() ? DType::F32 : dtype_from_string(env, string(env, sd, name + ".scaleDtype"), name + ".scaleDtype");
  if (f.scale_dtype != DType::F32 && f.scale_dtype != DType::F16 && f.scale_dtype != DType::BF16)
    range_error(env, name + ".scaleDtype: expected f32, f16 or bf16");
  return f;
}

Napi::Object format_object(Napi::Env env, const QuantFormat& f) {
  auto o = Napi::Object::New(env);
  o.Set("bits", f.bits);
  o.Set("groupSize", f.group_size);
  o.Set("symmetric", f.symmetric);
  o.Set("scaleDtype", dtype_name(f.scale_dtype));
  return o;
}

template <typename T>
Napi::Value to_js(Napi::Env env, const std::vector<T>& v);
template <>
Napi::Value to_js(Napi::Env env, const std::vector<float>& v) {
  auto a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
  return a;
}
template <>
Napi::Value to_js(Napi::Env env, const std::vector<int32_t>& v) {
  auto a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
  return a;
}
template <>
Napi::Value to_js(Napi::Env env, const std::vector<double>& v) {
  auto a = Napi::Float64Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 8);
  return a;
}

Napi::Object memory_object(Napi::Env env, const std::map<std::string, size_t>& m) {
  auto o = Napi::Object::New(env);
  for (auto& [k, v] : m) o.Set(k, (double)v);
  return o;
}

// ── Model ──────────────────────────────────────────────────────────────────────────────────────────────────────
class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::FunctionReference* ctor;
  std::shared_ptr<rt::Model> m;

  static void Init(Napi::Env env, Napi::Object exports) {
    auto f = DefineClass(env, "Model",
                         {InstanceMethod("setTensor", &ModelWrap::SetTensor),
                          InstanceMethod("setLinearQuant", &ModelWrap::SetLinearQuant),
                          InstanceMethod("quantizeLinear", &ModelWrap::QuantizeLinear),
                          InstanceMethod("setActivation", &ModelWrap::SetActivation),
                          InstanceMethod("linearNames", &ModelWrap::LinearNames),
                          InstanceMethod("linearInfo", &ModelWrap::LinearInfo),
                          InstanceMethod("getLinearWeight", &ModelWrap::GetLinearWeight),
                          InstanceMethod("scaleChannels", &ModelWrap::ScaleChannels),
                          InstanceMethod("randomize", &ModelWrap::Randomize),
                          InstanceMethod("captureStart", &ModelWrap::CaptureStart),
                          InstanceMethod("captureGet", &ModelWrap::CaptureGet),
                          InstanceMethod("captureStop", &ModelWrap::CaptureStop),
                          InstanceMethod("embed", &ModelWrap::Embed),
                          InstanceMethod("layerForward", &ModelWrap::LayerForward),
                          InstanceMethod("checkComplete", &ModelWrap::CheckComplete),
                          InstanceMethod("memory", &ModelWrap::Memory),
                          InstanceMethod("dispose", &ModelWrap::Dispose),
                          InstanceMethod("info", &ModelWrap::Info)});
    ctor = new Napi::FunctionReference(Napi::Persistent(f));
    exports.Set("Model", f);
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    auto env = info.Env();
    auto o = object(env, arg(info, 0, "config"), "config");
    rt::ModelConfig c;
    const std::string w = "config";
    c.hidden = (int)int_field(env, o, "hiddenSize", w, 0, true, 1);
    c.intermediate = (int)int_field(env, o, "intermediateSize", w, 0, true, 1);
    c.n_layers = (int)int_field(env, o, "numLayers", w, 0, true, 1);
    c.n_heads = (int)int_field(env, o, "numHeads", w, 0, true, 1);
    c.n_kv_heads = (int)int_field(env, o, "numKvHeads", w, 0, true, 1);
    c.head_dim = (int)int_field(env, o, "headDim", w, 0, true, 1);
    c.vocab = (int)int_field(env, o, "vocabSize", w, 0, true, 1);
    c.eps = (float)num_field(env, o, "rmsNormEps", w, 1e-5, true);
    c.tie_embeddings = bool_field(env, o, "tieWordEmbeddings", w, false);
    c.qkv_bias = bool_field(env, o, "qkvBias", w, false);
    c.o_bias = bool_field(env, o, "oBias", w, false);
    c.mlp_bias = bool_field(env, o, "mlpBias", w, false);
    c.max_context = int_field(env, o, "maxContext", w, 2048, false, 1, INT32_MAX);
    // layerWindows?: number[numLayers], the sliding attention window of each layer (0 = full attention).
    auto lw = o.Get("layerWindows");
    if (!lw.IsUndefined()) {
      if (!lw.IsArray())
        type_error(env, "config.layerWindows: expected an array of numLayers integers, got " + describe(lw));
      auto a = lw.As<Napi::Array>();
      if ((int64_t)a.Length() != c.n_layers)
        range_error(env, "config.layerWindows: expected " + std::to_string(c.n_layers) + " entries (numLayers), got " +
                             std::to_string(a.Length()));
      for (uint32_t i = 0; i < a.Length(); i++)
        c.window.push_back(integer(env, a.Get(i), "config.layerWindows[" + std::to_string(i) + "]", 0, INT32_MAX));
    }
    auto r = object(env, o.Get("rope"), "config.rope");
    c.rope.head_dim = c.head_dim;
    c.rope.theta = num_field(env, r, "theta", "config.rope", 10000, true);
    c.rope.rotary_dim = (int)int_field(env, r, "rotaryDim", "config.rope", c.head_dim, false, 2, c.head_dim);
    std::string sc = r.Get("scaling").IsUndefined() ? "none" : string(env, r.Get("scaling"), "config.rope.scaling");
    if (sc == "none") c.rope.scaling = 0;
    else if (sc == "llama3") c.rope.scaling = 1;
    else if (sc == "linear") c.rope.scaling = 2;
    else range_error(env, "config.rope.scaling: expected none, llama3 or linear, got '" + sc + "'");
    c.rope.factor = num_field(env, r, "factor", "config.rope", 1, false);
    c.rope.low_freq_factor = num_field(env, r, "lowFreqFactor", "config.rope", 1, false);
    c.rope.high_freq_factor = num_field(env, r, "highFreqFactor", "config.rope", 4, false);
    c.rope.original_max_position = num_field(env, r, "originalMaxPosition", "config.rope", 8192, false);
    guarded(env, [&] { m = std::make_shared<rt::Model>(c); });
  }

  // setTensor(name, dtype 'f32'|'f16'|'bf16', shape number[], data TypedArray, keepDtype = true)
  Napi::Value SetTensor(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto name = string(env, arg(info, 0, "name"), "name");
    DType dt = dtype_from_string(env, string(env, arg(info, 1, "dtype"), "dtype"), "dtype");
    auto sv = arg(info, 2, "shape");
    if (!sv.IsArray()) type_error(env, "shape: expected an array of integers, got " + describe(sv));
    auto sa = sv.As<Napi::Array>();
    std::vector<int64_t> shape;
    size_t n = 1;
    for (uint32_t i = 0; i < sa.Length(); i++) {
      shape.push_back(integer(env, sa.Get(i), "shape[" + std::to_string(i) + "]", 0, INT64_MAX / 2));
      n *= (size_t)shape.back();
    }
    const uint8_t* data = bytes_of(env, arg(info, 3, "data"), "data " + name, n * dtype_size(dt));
    bool keep = info.Length() > 4 && !info[4].IsUndefined() ? boolean(env, info[4], "keepDtype") : true;
    std::lock_guard<std::mutex> g(m->mu);
    guarded(env, [&] { m->set_tensor(name, dt, shape, data, keep); });
    return env.Undefined();
  }

  // setLinearQuant(name, format, codes Uint8Array, scales TypedArray, zeros Uint8Array | null)
  Napi::Value SetLinearQuant(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto name = string(env, arg(info, 0, "name"), "name");
    QuantFormat f = read_format(env, arg(info, 1, "format"), "format");
    auto cv = arg(info, 2, "codes");
    const uint8_t* codes = typed_array<uint8_t>(env, cv, "codes");
    size_t cb = cv.As<Napi::TypedArray>().ByteLength();
    auto sv = arg(info, 3, "scales");
    const uint8_t* scales = bytes_of(env, sv, "scales");
    size_t sb = sv.As<Napi::TypedArray>().ByteLength();
    const uint8_t* zeros = nullptr;
    size_t zb = 0;
    if (info.Length() > 4 && !info[4].IsNull() && !info[4].IsUndefined()) {
      zeros = typed_array<uint8_t>(env, info[4], "zeros");
      zb = info[4].As<Napi::TypedArray>().ByteLength();
    }
    std::lock_guard<std::mutex> g(m->mu);
    guarded(env, [&] { m->set_linear_quant(name, f, codes, cb, scales, sb, zeros, zb); });
    return env.Undefined();
  }

  // quantizeLinear(name, format): Promise<void> — RTN in place.
  Napi::Value QuantizeLinear(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto name = string(env, arg(info, 0, "name"), "name");
    QuantFormat f = read_format(env, arg(info, 1, "format"), "format");
    guarded(env, [&] { m->linear(name); });
    auto mm = m;
    return run_async(
        env, [mm, name, f] { std::lock_guard<std::mutex> g(mm->mu); mm->quantize_linear(name, f); },
        [](Napi::Env e) { return e.Undefined(); }, {info.This()});
  }

  // setActivation(name, mode 'none'|'a8'|'sim', bits = 8)
  Napi::Value SetActivation(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto name = string(env, arg(info, 0, "name"), "name");
    auto mode = string(env, arg(info, 1, "mode"), "mode");
    int bits = info.Length() > 2 && !info[2].IsUndefined() ? (int)integer(env, info[2], "bits", 2, 16) : 8;
    std::lock_guard<std::mutex> g(m->mu);
    guarded(env, [&] {
      auto& L = m->linear(name);
      if (mode == "none") L.act = ActMode::None;
      else if (mode == "a8") L.act = ActMode::A8;
      else if (mode == "sim") L.act = ActMode::Simulated;
      else throw std::out_of_range("mode: expected none, a8 or sim, got '" + mode + "'");
      L.act_bits = mode == "a8" ? 8 : bits;
    });
    return env.Undefined();
  }

  Napi::Value LinearNames(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto names = m->linear_names();
    auto a = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); i++) a.Set((uint32_t)i, names[i]);
    return a;
  }

  Napi::Value LinearInfo(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto name = string(env, arg(info, 0, "name"), "name");
    std::lock_guard<std::mutex> g(m->mu);
    return guarded(env, [&]() -> Napi::Value {
      auto& L = m->linear(name);
      auto o = Napi::Object::New(env);
      o.Set("name", L.name);
      o.Set("N", (double)L.N);
      o.Set("K", (double)L.K);
      o.Set("set", L.set);
      o.Set("quantized", L.quantized);
      o.Set("format", L.format_name());
      if (L.quantized) o.Set("quant", format_object(env, L.fmt));
      else o.Set("dtype", dtype_name(L.dtype));
      o.Set("tied", L.set && !L.quantized && L.dense_ptr != L.dense.data());
      o.Set("hasBias", L.has_bias);
      o.Set("activation", L.act == ActMode::None ? "none" : L.act == ActMode::A8 ? "a8" : "sim");
      o.Set("activationBits", L.act == ActMode::None ? 0 : L.act_bits);
      o.Set("execution", L.simulated() ? "simulated" : "native");
      o.Set("bytes", (double)L.weight_bytes());
      return o;
    });
  }

  // getLinearWeight(name): Float32Array [N * K], the dequantized weight (what the kernels compute with).
  Napi::Value GetLinearWeight(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto name = string(env, arg(info, 0, "name"), "name");
    std::lock_guard<std::mutex> g(m->mu);
    return guarded(env, [&]() -> Napi::Value { return to_js(env, m->linear(name).to_f32()); });
  }

  // scaleChannels(prev, next string[], scales Float32Array[K])
  Napi::Value ScaleChannels(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto prev = string(env, arg(info, 0, "prev"), "prev");
    auto nv = arg(info, 1, "next");
    if (!nv.IsArray()) type_error(env, "next: expected an array of linear names, got " + describe(nv));
    std::vector<std::string> next;
    auto na = nv.As<Napi::Array>();
    for (uint32_t i = 0; i < na.Length(); i++) next.push_back(string(env, na.Get(i), "next[" + std::to_string(i) + "]"));
    auto sv = arg(info, 2, "scales");
    const float* s = typed_array<float>(env, sv, "scales");
    int64_t K = (int64_t)sv.As<Napi::TypedArray>().ElementLength();
    std::lock_guard<std::mutex> g(m->mu);
    guarded(env, [&] { m->scale_channels(prev, next, s, K); });
    return env.Undefined();
  }

  // randomize(seed, { denseDtype, format?, quantizeLmHead? }): Promise<void>
  Napi::Value Randomize(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    uint64_t seed = (uint64_t)integer(env, arg(info, 0, "seed"), "seed", 0, (int64_t)1 << 52);
    auto o = info.Length() > 1 ? object(env, info[1], "options") : Napi::Object::New(env);
    DType dd = o.Get("denseDtype").IsUndefined()
                   ? DType::F32
                   : dtype_from_string(env, string(env, o.Get("denseDtype"), "options.denseDtype"), "options.denseDtype");
    if (dd != DType::F32 && dd != DType::F16 && dd != DType::BF16) range_error(env, "options.denseDtype: expected f32, f16 or bf16");
    bool has_fmt = !o.Get("format").IsUndefined() && !o.Get("format").IsNull();
    QuantFormat f;
    if (has_fmt) f = read_format(env, o.Get("format"), "options.format");
    bool qlm = bool_field(env, o, "quantizeLmHead", "options", false);
    auto mm = m;
    return run_async(
        env, [mm, seed, dd, f, has_fmt, qlm] {
          std::lock_guard<std::mutex> g(mm->mu);
          mm->randomize(seed, dd, has_fmt ? &f : nullptr, qlm);
        },
        [](Napi::Env e) { return e.Undefined(); }, {info.This()});
  }

  // captureStart(names string[], { hessian = true, sampleRows?: Int32Array (strictly increasing global row
  // indices) }): starts (and zeroes) statistics for these linears; sampleRows also keeps those input rows.
  Napi::Value CaptureStart(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto nv = arg(info, 0, "names");
    if (!nv.IsArray()) type_error(env, "names: expected an array of linear names, got " + describe(nv));
    bool hess = true;
    std::vector<int64_t> sample_rows;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      auto o = object(env, info[1], "options");
      hess = bool_field(env, o, "hessian", "options", true);
      auto sr = o.Get("sampleRows");
      if (!sr.IsUndefined() && !sr.IsNull()) {
        const size_t n = sr.IsTypedArray() ? sr.As<Napi::TypedArray>().ElementLength() : 0;
        const int32_t* p = typed_array<int32_t>(env, sr, "options.sampleRows");
        sample_rows.assign(p, p + n);
        for (size_t i = 0; i < n; i++)
          if (p[i] < 0 || (i > 0 && p[i] <= p[i - 1]))
            range_error(env, "options.sampleRows: expected strictly increasing row indices >= 0, got " +
                                 std::to_string(p[i]) + " at index " + std::to_string(i));
      }
    }
    auto na = nv.As<Napi::Array>();
    std::vector<std::string> names;
    for (uint32_t i = 0; i < na.Length(); i++) names.push_back(string(env, na.Get(i), "names[" + std::to_string(i) + "]"));
    std::lock_guard<std::mutex> g(m->mu);
    guarded(env, [&] { m->capture_start(names, hess, sample_rows); });
    return env.Undefined();
  }

  // captureGet(name, { hessianF32 = false }): { rows, hessian?: Float64Array [K*K] (symmetric, sum x^T x) or, with
  // hessianF32, hessianF32?: Float32Array [K*K] (the same sums rounded to fp32, what GPTQ takes: half the memory
  // and no conversion in JS), absMean: Float64Array [K], absMax: Float32Array [K], samples?: Float32Array
  // [sampleCount, K] (the sampled rows that were reached) }
  Napi::Value CaptureGet(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto name = string(env, arg(info, 0, "name"), "name");
    bool f32 = false;
    if (info.Length() > 1 && !info[1].IsUndefined())
      f32 = bool_field(env, object(env, info[1], "options"), "hessianF32", "options", false);
    std::lock_guard<std::mutex> g(m->mu);
    return guarded(env, [&]() -> Napi::Value {
      auto& L = m->linear(name);
      if (!L.capture) throw std::invalid_argument("captureGet: no capture was started for '" + name + "'");
      const rt::InputStats& c = *L.capture->in;
      auto o = Napi::Object::New(env);
      o.Set("rows", (double)L.capture->rows);
      if (c.hessian) {
        // Mirror the accumulated upper triangle in 64 x 64 tiles, so the transposed reads stay in cache.
        const int64_t K = c.K;
        const double* src = c.H.data();
        auto mirror = [&](auto* dst) {
          constexpr int64_t kT = 64;
          parallel_for((K + kT - 1) / kT, 1, [&](int64_t lo, int64_t hi) {
            for (int64_t i0 = lo * kT; i0 < std::min(K, hi * kT); i0 += kT)
              for (int64_t j0 = 0; j0 < K; j0 += kT)
                for (int64_t i = i0; i < std::min(K, i0 + kT); i++)
                  for (int64_t j = j0; j < std::min(K, j0 + kT); j++)
                    dst[i * K + j] = (std::remove_reference_t<decltype(*dst)>)(j >= i ? src[i * K + j] : src[j * K + i]);
          });
        };
        if (f32) {
          auto h = Napi::Float32Array::New(env, c.H.size());
          mirror(h.Data());
          o.Set("hessianF32", h);
        } else {
          auto h = Napi::Float64Array::New(env, c.H.size());
          mirror(h.Data());
          o.Set("hessian", h);
        }
      }
      std::vector<double> mean(c.K);
      for (int64_t k = 0; k < c.K; k++) mean[k] = c.rows ? c.abs_sum[k] / (double)c.rows : 0;
      o.Set("absMean", to_js(env, mean));
      o.Set("absMax", to_js(env, c.abs_max));
      if (!c.sample_rows.empty()) {
        auto x = Napi::Float32Array::New(env, c.taken * (size_t)c.K);
        if (c.taken) std::memcpy(x.Data(), c.samples.data(), c.taken * (size_t)c.K * 4);
        o.Set("samples", x);
        o.Set("sampleCount", (double)c.taken);
      }
      return o;
    });
  }

  // captureStop(names?: string[]): frees capture buffers (all when omitted).
  Napi::Value CaptureStop(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    std::lock_guard<std::mutex> g(m->mu);
    if (info.Length() > 0 && info[0].IsArray()) {
      auto na = info[0].As<Napi::Array>();
      for (uint32_t i = 0; i < na.Length(); i++)
        guarded(env, [&] { m->linear(string(env, na.Get(i), "names[" + std::to_string(i) + "]")).capture.reset(); });
    } else {
      for (auto& L : m->layers)
        for (auto& l : L.lin) l.capture.reset();
      m->lm_head.capture.reset();
    }
    return env.Undefined();
  }

  // embed(tokens Int32Array[n]) → Promise<Float32Array [n, D]>: embedding rows (layer-wise calibration input).
  Napi::Value Embed(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto tv = arg(info, 0, "tokens");
    const int32_t* tok = typed_array<int32_t>(env, tv, "tokens");
    const int64_t n = (int64_t)tv.As<Napi::TypedArray>().ElementLength();
    if (n < 1) range_error(env, "tokens: expected at least one token");
    auto out = std::make_shared<std::vector<float>>();
    auto mm = m;
    return run_async(
        env,
        [mm, tok, n, out] {
          std::lock_guard<std::mutex> g(mm->mu);
          out->resize((size_t)(n * mm->cfg.hidden));
          rt::embed_rows(*mm, tok, n, out->data());
        },
        [out](Napi::Env e) { return to_js(e, *out); }, {tv, info.This()});
  }

  // layerForward(layer, hidden Float32Array [Σ counts, D], counts Int32Array [S], { capture = false })
  //   → Promise<Float32Array [Σ counts, D]>: decoder layer `layer` applied to each sequence (from position 0);
  //   the input is not modified. With capture, active captures of that layer's linears accumulate.
  Napi::Value LayerForward(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    const int layer = (int)integer(env, arg(info, 0, "layer"), "layer", 0, m->cfg.n_layers - 1);
    auto cv = arg(info, 2, "counts");
    const int32_t* cp = typed_array<int32_t>(env, cv, "counts");
    const int64_t S = (int64_t)cv.As<Napi::TypedArray>().ElementLength();
    if (S < 1) range_error(env, "counts: expected at least one sequence");
    int64_t total = 0;
    for (int64_t s = 0; s < S; s++) {
      if (cp[s] < 1) range_error(env, "counts[" + std::to_string(s) + "]: expected >= 1, got " + std::to_string(cp[s]));
      total += cp[s];
    }
    auto hv = arg(info, 1, "hidden");
    const float* hp = typed_array<float>(env, hv, "hidden", (size_t)(total * m->cfg.hidden));
    bool cap = false;
    if (info.Length() > 3 && !info[3].IsUndefined()) cap = bool_field(env, object(env, info[3], "options"), "capture", "options", false);
    std::vector<int32_t> counts(cp, cp + S);
    auto out = std::make_shared<std::vector<float>>(hp, hp + total * m->cfg.hidden);
    auto mm = m;
    return run_async(
        env,
        [mm, layer, counts, cap, out] {
          std::lock_guard<std::mutex> g(mm->mu);
          rt::layer_forward(*mm, layer, out->data(), counts.data(), (int64_t)counts.size(), cap);
        },
        [out](Napi::Env e) { return to_js(e, *out); }, {hv, cv, info.This()});
  }

  Napi::Value CheckComplete(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(m->mu);
    guarded(info.Env(), [&] { m->check_complete(); });
    return info.Env().Undefined();
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(m->mu);
    return memory_object(info.Env(), m->weight_memory());
  }

  // dispose(): frees the weights now instead of at garbage collection.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(m->mu);
    m->release();
    return info.Env().Undefined();
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    std::lock_guard<std::mutex> g(m->mu);
    auto o = Napi::Object::New(env);
    o.Set("simulated", m->any_simulated());
    o.Set("decodeWeightBytes", (double)m->decode_weight_bytes());
    return o;
  }
};
Napi::FunctionReference* ModelWrap::ctor = nullptr;

// ── Session ────────────────────────────────────────────────────────────────────────────────────────────────────
class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  std::shared_ptr<rt::Session> s;

  static void Init(Napi::Env env, Napi::Object exports) {
    auto f = DefineClass(env, "Session",
                         {InstanceMethod("alloc", &SessionWrap::Alloc), InstanceMethod("free", &SessionWrap::Free),
                          InstanceMethod("length", &SessionWrap::Length),
                          InstanceMethod("truncate", &SessionWrap::Truncate),
                          InstanceMethod("fork", &SessionWrap::Fork),
                          InstanceMethod("canTruncate", &SessionWrap::CanTruncate),
                          InstanceMethod("firstHeld", &SessionWrap::FirstHeld),
                          InstanceMethod("fillZeros", &SessionWrap::FillZeros),
                          InstanceMethod("profile", &SessionWrap::Profile),
                          InstanceMethod("prefill", &SessionWrap::Prefill),
                          InstanceMethod("decode", &SessionWrap::Decode),
                          InstanceMethod("memory", &SessionWrap::Memory),
                          InstanceMethod("dispose", &SessionWrap::Dispose)});
    exports.Set("Session", f);
    new Napi::FunctionReference(Napi::Persistent(f));  // kept for the addon's lifetime
  }

  // new Session(model, { kvType: 'f32'|'f16'|'int8'|'int4'|'int3'|'int2' = 'f32', kType?, vType?, maxLen }): kvType is the
  // element type of K and V; kType / vType override it for one side (e.g. { kType: 'int8', vType: 'int4' }).
  // windowEvict (default: true unless QUANTEVAL_WINDOW_EVICT=0): sliding-window layers keep only the positions a
  // later query can see (bounded cache); false keeps every position.
  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {
    auto env = info.Env();
    auto mv = arg(info, 0, "model");
    if (!mv.IsObject() || !mv.As<Napi::Object>().InstanceOf(ModelWrap::ctor->Value()))
      type_error(env, "model: expected a native Model, got " + describe(mv));
    auto* mw = ModelWrap::Unwrap(mv.As<Napi::Object>());
    auto o = info.Length() > 1 ? object(env, info[1], "options") : Napi::Object::New(env);
    auto kv_type = [&](const char* key, KVType dflt) {
      if (o.Get(key).IsUndefined()) return dflt;
      const std::string field = std::string("options.") + key;
      const std::string kt = string(env, o.Get(key), field);
      if (kt == "f32") return KVType::F32;
      if (kt == "f16") return KVType::F16;
      if (kt == "int8") return KVType::I8;
      if (kt == "int4") return KVType::I4;
      if (kt == "int3") return KVType::I3;
      if (kt == "int2") return KVType::I2;
      range_error(env, field + ": expected f32, f16, int8, int4, int3 or int2, got '" + kt + "'");
    };
    const KVType t = kv_type("kvType", KVType::F32);
    const KVType kt = kv_type("kType", t), vt = kv_type("vType", t);
    int64_t ml = int_field(env, o, "maxLen", "options", mw->m->cfg.max_context, false, 1, mw->m->cfg.max_context);
    const Napi::Value ev = o.Get("windowEvict");
    const bool has_ev = !ev.IsUndefined(), evict = has_ev && boolean(env, ev, "options.windowEvict");
    guarded(env, [&] {
      s = has_ev ? std::make_shared<rt::Session>(mw->m, kt, vt, ml, evict) : std::make_shared<rt::Session>(mw->m, kt, vt, ml);
    });
  }

  Napi::Value Alloc(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(s->model->mu);
    return Napi::Number::New(info.Env(), s->alloc_seq());
  }
  Napi::Value Free(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    int id = (int)integer(env, arg(info, 0, "seq"), "seq", 0, INT32_MAX);
    std::lock_guard<std::mutex> g(s->model->mu);
    guarded(env, [&] { s->free_seq(id); });
    return env.Undefined();
  }
  Napi::Value Length(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    int id = (int)integer(env, arg(info, 0, "seq"), "seq", 0, INT32_MAX);
    std::lock_guard<std::mutex> g(s->model->mu);
    return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, (double)s->seq_len(id)); });
  }
  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    int id = (int)integer(env, arg(info, 0, "seq"), "seq", 0, INT32_MAX);
    int64_t len = integer(env, arg(info, 1, "length"), "length", 0, INT32_MAX);
    std::lock_guard<std::mutex> g(s->model->mu);
    guarded(env, [&] { s->truncate(id, len); });
    return env.Undefined();
  }

  // fork(seq, count = 1): Promise<Int32Array> of `count` new sequence ids, each holding a copy of seq's cache. Async:
  // copying a long cache takes longer than a millisecond.
  Napi::Value Fork(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    int id = (int)integer(env, arg(info, 0, "seq"), "seq", 0, INT32_MAX);
    int count = info.Length() > 1 && !info[1].IsUndefined() ? (int)integer(env, info[1], "count", 1, 1 << 20) : 1;
    {
      std::lock_guard<std::mutex> g(s->model->mu);
      guarded(env, [&] { s->seq_len(id); });  // a bad id rejects here, synchronously
    }
    auto ids = std::make_shared<std::vector<int32_t>>((size_t)count);
    auto ss = s;
    return run_async(
        env,
        [ss, id, count, ids] {
          std::lock_guard<std::mutex> g(ss->model->mu);
          ss->fork_seq(id, count, ids->data());
        },
        [ids](Napi::Env e) -> Napi::Value { return to_js(e, *ids); }, {info.This()});
  }

  // canTruncate(seq, length): whether truncate(seq, length) would succeed (a sliding-window layer may have dropped
  // positions the token at `length` would attend to).
  Napi::Value CanTruncate(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    int id = (int)integer(env, arg(info, 0, "seq"), "seq", 0, INT32_MAX);
    int64_t len = integer(env, arg(info, 1, "length"), "length", 0, INT32_MAX);
    std::lock_guard<std::mutex> g(s->model->mu);
    bool r = false;
    guarded(env, [&] { r = s->can_truncate(id, len); });
    return Napi::Boolean::New(env, r);
  }

  // firstHeld(seq, layer): the first position the layer's cache of the sequence still holds (0 unless a
  // sliding-window layer dropped its dead prefix).
  Napi::Value FirstHeld(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    int id = (int)integer(env, arg(info, 0, "seq"), "seq", 0, INT32_MAX);
    int layer = (int)integer(env, arg(info, 1, "layer"), "layer", 0, INT32_MAX);
    std::lock_guard<std::mutex> g(s->model->mu);
    int64_t r = 0;
    guarded(env, [&] { r = s->first_held(id, layer); });
    return Napi::Number::New(env, (double)r);
  }

  // profile(enable?: boolean): returns the decode-step profile so far { steps, totalMs, linearMs, attentionMs,
  // kvStoreMs, otherMs } and, when `enable` is given, resets it and turns profiling on or off.
  Napi::Value Profile(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    std::lock_guard<std::mutex> g(s->model->mu);
    auto& p = s->profile;
    auto o = Napi::Object::New(env);
    o.Set("steps", (double)p.steps);
    o.Set("totalMs", p.total * 1e3);
    o.Set("linearMs", p.linear * 1e3);
    o.Set("attentionMs", p.attention * 1e3);
    o.Set("kvStoreMs", p.kv_store * 1e3);
    o.Set("otherMs", p.other * 1e3);
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      bool on = boolean(env, info[0], "enable");
      p = rt::DecodeProfile{};
      p.on = on;
    }
    return o;
  }

  // fillZeros(seq, length): benchmarks only — grows the cache to `length` tokens of zeros without computing them.
  Napi::Value FillZeros(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    int id = (int)integer(env, arg(info, 0, "seq"), "seq", 0, INT32_MAX);
    int64_t len = integer(env, arg(info, 1, "length"), "length", 0, INT32_MAX);
    std::lock_guard<std::mutex> g(s->model->mu);
    guarded(env, [&] { s->fill_zeros(id, len); });
    return env.Undefined();
  }

  // prefill(seqs Int32Array[S], tokens Int32Array[sum counts], counts Int32Array[S], options) → Promise<{ rows,
  //   logits?, logSoftmax?, argmax, logprobs?, topkIds?, topkLogprobs? }>
  // options: { rows: 'none'|'last'|'all' = 'last', logits = true, logSoftmax = false, topk = 0,
  //            targets?: Int32Array[sum counts] (−1: none; needs rows 'all'), capture = false }
  Napi::Value Prefill(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto sv = arg(info, 0, "seqs"), tv = arg(info, 1, "tokens"), cv = arg(info, 2, "counts");
    const int32_t* seqs = typed_array<int32_t>(env, sv, "seqs");
    const int64_t S = (int64_t)sv.As<Napi::TypedArray>().ElementLength();
    const int32_t* counts = typed_array<int32_t>(env, cv, "counts", (size_t)S);
    int64_t total = 0;
    for (int64_t i = 0; i < S; i++) total += counts[i];
    const int32_t* tokens = typed_array<int32_t>(env, tv, "tokens", (size_t)total);
    auto o = info.Length() > 3 && !info[3].IsUndefined() ? object(env, info[3], "options") : Napi::Object::New(env);
    auto out = std::make_shared<rt::StepOutputs>();
    std::string rows = o.Get("rows").IsUndefined() ? "last" : string(env, o.Get("rows"), "options.rows");
    if (rows == "none") out->rows_mode = 0;
    else if (rows == "last") out->rows_mode = 1;
    else if (rows == "all") out->rows_mode = 2;
    else range_error(env, "options.rows: expected none, last or all, got '" + rows + "'");
    out->want_logits = bool_field(env, o, "logits", "options", true);
    out->want_log_softmax = bool_field(env, o, "logSoftmax", "options", false);
    out->topk = (int)int_field(env, o, "topk", "options", 0, false, 0, 1 << 20);
    if (out->topk > s->model->cfg.vocab) range_error(env, "options.topk: must be <= vocab size " + std::to_string(s->model->cfg.vocab));
    out->capture = bool_field(env, o, "capture", "options", false);
    std::vector<Napi::Value> keep{info.This(), sv, tv, cv};
    if (!o.Get("targets").IsUndefined()) {
      if (out->rows_mode != 2) range_error(env, "options.targets: needs options.rows 'all'");
      out->targets = typed_array<int32_t>(env, o.Get("targets"), "options.targets", (size_t)total);
      keep.push_back(o.Get("targets"));
    }
    auto ss = s;
    return run_async(
        env,
        [ss, seqs, S, tokens, counts, out] {
          std::lock_guard<std::mutex> g(ss->model->mu);
          ss->prefill(seqs, S, tokens, counts, *out);
        },
        [out](Napi::Env e) -> Napi::Value {
          auto r = Napi::Object::New(e);
          r.Set("rows", (double)out->R);
          if (out->R) {
            if (out->want_logits) r.Set("logits", to_js(e, out->logits));
            if (out->want_log_softmax) r.Set("logSoftmax", to_js(e, out->log_softmax));
            r.Set("argmax", to_js(e, out->argmax));
            if (out->targets) r.Set("logprobs", to_js(e, out->logprobs));
            if (out->topk) {
              r.Set("topkIds", to_js(e, out->topk_idx));
              r.Set("topkLogprobs", to_js(e, out->topk_logp));
            }
          }
          return r;
        },
        keep);
  }

  // decode(seqs Int32Array[B], tokens Int32Array[B]) → Promise<Float32Array [B, V]> logits.
  Napi::Value Decode(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto sv = arg(info, 0, "seqs"), tv = arg(info, 1, "tokens");
    const int32_t* seqs = typed_array<int32_t>(env, sv, "seqs");
    const int64_t B = (int64_t)sv.As<Napi::TypedArray>().ElementLength();
    const int32_t* tokens = typed_array<int32_t>(env, tv, "tokens", (size_t)B);
    if (B < 1) range_error(env, "seqs: expected at least one sequence");
    auto V = s->model->cfg.vocab;
    auto logits = std::make_shared<std::vector<float>>((size_t)(B * V));
    auto ss = s;
    return run_async(
        env,
        [ss, seqs, B, tokens, logits] {
          std::lock_guard<std::mutex> g(ss->model->mu);
          ss->decode(seqs, B, tokens, logits->data());
        },
        [logits](Napi::Env e) -> Napi::Value { return to_js(e, *logits); }, {info.This(), sv, tv});
  }

  Napi::Value Memory(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(s->model->mu);
    return memory_object(info.Env(), s->memory());
  }

  // dispose(): frees every cache now; the sequence ids become invalid.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> g(s->model->mu);
    s->release();
    return info.Env().Undefined();
  }
};

}  // namespace

void init_runtime_bindings(Napi::Env env, Napi::Object exports) {
  ModelWrap::Init(env, exports);
  SessionWrap::Init(env, exports);
}

}  // namespace quanteval::napi
