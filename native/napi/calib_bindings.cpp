// N-API bindings of the calibration numerics (native/calib, quanteval/calib.h). Every function validates its
// arguments (args.h), allocates its outputs as JS typed arrays on the calling thread and runs the numerics on the
// libuv pool, returning a Promise.
//
//   rtnQuantize(W, N, K, fmt, wantWHat)                        -> { codes, scales, zeros, wHat? }
//   gptqQuantize(W, N, K, H, fmt, opts, wantWHat)              -> { codes, scales, zeros, wHat?, loss, deadColumns, perm? }
//   awqSearchScale(W, N, K, H, xMeanAbs, fmt, nGrid, tokens)   -> { scales, best, bestRatio, losses }
//   awqSearchClip(W, N, K, H, fmt, nGrid, maxShrink)           -> { w, maxVal }
//   awqSearchScaleX(W, N, K, X, n, xMeanAbs, fmt, nGrid)       -> { scales, best, bestRatio, losses }
//   awqSearchClipX(W, N, K, X, n, fmt, nGrid, maxShrink)       -> { w, maxVal }
//   smoothquantScales(actMax, W, N, K, alpha)                  -> Float32Array [K]
//   upperCholeskyOfInverse(H, K)                               -> Float32Array [K*K]
//
// W: Float32Array [N*K]; H: Float32Array [K*K]; X: Float32Array [n*K] (row sample of the inputs); fmt: { bits: 2|3|4|8, groupSize: int >= 1 (K for per channel),
// symmetric: boolean, scaleDtype: "f32"|"f16"|"bf16" }; scales come back as Float32Array (f32) or Uint16Array
// (f16/bf16 bits), zeros as Uint8Array [N*G] (null when symmetric); opts: { percdamp, blockSize, actOrder,
// staticGroups }.
#include <memory>

#include "args.h"
#include "modules.h"
#include "quanteval/calib.h"

namespace quanteval::napi {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 24;

QuantFormat read_format(Napi::Env env, const Napi::Value& v, const std::string& name) {
  auto o = object(env, v, name);
  QuantFormat f;
  f.bits = (int)integer(env, o.Get("bits"), name + ".bits", 2, 8);
  if (!valid_bits(f.bits)) range_error(env, name + ".bits: expected 2, 3, 4, 6 or 8, got " + std::to_string(f.bits));
  f.group_size = (int)integer(env, o.Get("groupSize"), name + ".groupSize", 1, kMaxDim);
  f.symmetric = boolean(env, o.Get("symmetric"), name + ".symmetric");
  auto sd = o.Get("scaleDtype");
  f.scale_dtype = sd.IsUndefined() ? DType::F32 : dtype_from_string(env, string(env, sd, name + ".scaleDtype"), name + ".scaleDtype");
  if (f.scale_dtype != DType::F32 && f.scale_dtype != DType::F16 && f.scale_dtype != DType::BF16)
    range_error(env, name + ".scaleDtype: expected f32, f16 or bf16, got '" + std::string(dtype_name(f.scale_dtype)) + "'");
  return f;
}

// Packed outputs allocated in JS.
struct Packed {
  Napi::Uint8Array codes;
  Napi::Value scales;
  Napi::Value zeros;
  uint8_t* codes_p = nullptr;
  void* scales_p = nullptr;
  uint8_t* zeros_p = nullptr;
};
Packed alloc_packed(Napi::Env env, int64_t N, int64_t K, const QuantFormat& f) {
  Packed p;
  const int64_t G = n_groups(K, f.group_size);
  p.codes = Napi::Uint8Array::New(env, (size_t)(N * row_bytes(K, f.bits)));
  p.codes_p = p.codes.Data();
  if (f.scale_dtype == DType::F32) {
    auto s = Napi::Float32Array::New(env, (size_t)(N * G));
    p.scales_p = s.Data();
    p.scales = s;
  } else {
    auto s = Napi::Uint16Array::New(env, (size_t)(N * G));
    p.scales_p = s.Data();
    p.scales = s;
  }
  if (f.symmetric) p.zeros = env.Null();
  else {
    auto z = Napi::Uint8Array::New(env, (size_t)(N * G));
    p.zeros_p = z.Data();
    p.zeros = z;
  }
  return p;
}

Napi::Object packed_object(Napi::Env env, const Packed& p) {
  auto o = Napi::Object::New(env);
  o.Set("codes", p.codes);
  o.Set("scales", p.scales);
  o.Set("zeros", p.zeros);
  return o;
}

Napi::Value RtnQuantize(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t N = integer(env, arg(info, 1, "N"), "N", 1, kMaxDim), K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
    const float* W = typed_array<float>(env, arg(info, 0, "W"), "W", (size_t)(N * K));
    const QuantFormat f = read_format(env, arg(info, 3, "fmt"), "fmt");
    const bool want = info.Length() > 4 && !info[4].IsUndefined() ? boolean(env, info[4], "wantWHat") : false;
    auto p = std::make_shared<Packed>(alloc_packed(env, N, K, f));
    Napi::Value what = env.Undefined();
    float* wh = nullptr;
    if (want) {
      auto a = Napi::Float32Array::New(env, (size_t)(N * K));
      wh = a.Data();
      what = a;
    }
    auto out = packed_object(env, *p);
    if (want) out.Set("wHat", what);
    auto outRef = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out));
    return run_async(
        env, [=]() { rtn_quantize(W, N, K, f, p->codes_p, p->scales_p, p->zeros_p, wh); },
        [outRef](Napi::Env) -> Napi::Value { return outRef->Value(); }, {info[0], out});
  });
}

Napi::Value GptqQuantize(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t N = integer(env, arg(info, 1, "N"), "N", 1, kMaxDim), K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
    const float* W = typed_array<float>(env, arg(info, 0, "W"), "W", (size_t)(N * K));
    const float* H = typed_array<float>(env, arg(info, 3, "H"), "H", (size_t)(K * K));
    const QuantFormat f = read_format(env, arg(info, 4, "fmt"), "fmt");
    auto oo = object(env, arg(info, 5, "opts"), "opts");
    GptqOptions opt;
    if (!oo.Get("percdamp").IsUndefined()) opt.percdamp = number(env, oo.Get("percdamp"), "opts.percdamp");
    if (!(opt.percdamp > 0 && opt.percdamp <= 1))
      range_error(env, "opts.percdamp: expected a number in (0, 1], got " + std::to_string(opt.percdamp));
    if (!oo.Get("blockSize").IsUndefined()) opt.block_size = (int)integer(env, oo.Get("blockSize"), "opts.blockSize", 1, 1 << 16);
    if (!oo.Get("actOrder").IsUndefined()) opt.act_order = boolean(env, oo.Get("actOrder"), "opts.actOrder");
    if (!oo.Get("staticGroups").IsUndefined()) opt.static_groups = boolean(env, oo.Get("staticGroups"), "opts.staticGroups");
    if (opt.act_order && n_groups(K, f.group_size) > 1 && !opt.static_groups)
      type_error(env, "opts.actOrder: act order with groups (fmt.groupSize " + std::to_string(f.group_size) + " < K " +
                          std::to_string(K) + ") requires opts.staticGroups: packed groups are contiguous in input order");
    const bool want = info.Length() > 6 && !info[6].IsUndefined() ? boolean(env, info[6], "wantWHat") : false;
    auto p = std::make_shared<Packed>(alloc_packed(env, N, K, f));
    float* wh = nullptr;
    auto out = packed_object(env, *p);
    if (want) {
      auto a = Napi::Float32Array::New(env, (size_t)(N * K));
      wh = a.Data();
      out.Set("wHat", a);
    }
    auto outRef = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out));
    auto res = std::make_shared<GptqResult>();
    return run_async(
        env, [=]() { *res = gptq_quantize(W, N, K, H, f, opt, p->codes_p, p->scales_p, p->zeros_p, wh); },
        [outRef, res](Napi::Env e) -> Napi::Value {
          auto o = outRef->Value();
          o.Set("loss", res->loss);
          o.Set("deadColumns", (double)res->dead_columns);
          if (!res->perm.empty()) {
            auto a = Napi::Int32Array::New(e, res->perm.size());
            std::copy(res->perm.begin(), res->perm.end(), a.Data());
            o.Set("perm", a);
          }
          return o;
        },
        {info[0], info[3], out});
  });
}

Napi::Value AwqSearchScale(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t N = integer(env, arg(info, 1, "N"), "N", 1, kMaxDim), K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
    const float* W = typed_array<float>(env, arg(info, 0, "W"), "W", (size_t)(N * K));
    const float* H = typed_array<float>(env, arg(info, 3, "H"), "H", (size_t)(K * K));
    const float* xm = typed_array<float>(env, arg(info, 4, "xMeanAbs"), "xMeanAbs", (size_t)K);
    const QuantFormat f = read_format(env, arg(info, 5, "fmt"), "fmt");
    const int grid = (int)integer(env, arg(info, 6, "nGrid"), "nGrid", 1, 1000);
    const double tokens = number(env, arg(info, 7, "tokens"), "tokens");
    if (!(tokens > 0)) range_error(env, "tokens: expected a positive number, got " + std::to_string(tokens));
    auto s = Napi::Float32Array::New(env, (size_t)K);
    float* sp = s.Data();
    auto sRef = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(s));
    auto res = std::make_shared<AwqScaleResult>();
    return run_async(
        env, [=]() { *res = awq_search_scale(W, N, K, H, xm, f, grid, tokens, sp); },
        [sRef, res](Napi::Env e) -> Napi::Value {
          auto o = Napi::Object::New(e);
          o.Set("scales", sRef->Value());
          o.Set("best", res->best);
          o.Set("bestRatio", res->best_ratio);
          auto l = Napi::Array::New(e, res->losses.size());
          for (size_t i = 0; i < res->losses.size(); i++) l.Set((uint32_t)i, res->losses[i]);
          o.Set("losses", l);
          return o;
        },
        {info[0], info[3], info[4], s});
  });
}

Napi::Value AwqSearchClip(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t N = integer(env, arg(info, 1, "N"), "N", 1, kMaxDim), K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
    const float* W = typed_array<float>(env, arg(info, 0, "W"), "W", (size_t)(N * K));
    const float* H = typed_array<float>(env, arg(info, 3, "H"), "H", (size_t)(K * K));
    const QuantFormat f = read_format(env, arg(info, 4, "fmt"), "fmt");
    const int grid = (int)integer(env, arg(info, 5, "nGrid"), "nGrid", 1, 1000);
    const double shrink = number(env, arg(info, 6, "maxShrink"), "maxShrink");
    if (!(shrink >= 0 && shrink < 1)) range_error(env, "maxShrink: expected a number in [0, 1), got " + std::to_string(shrink));
    const int64_t G = n_groups(K, f.group_size);
    auto w = Napi::Float32Array::New(env, (size_t)(N * K));
    auto mv = Napi::Float32Array::New(env, (size_t)(N * G));
    float* wp = w.Data();
    float* mvp = mv.Data();
    auto o = Napi::Object::New(env);
    o.Set("w", w);
    o.Set("maxVal", mv);
    auto oRef = std::make_shared<Napi::ObjectReference>(Napi::Persistent(o));
    return run_async(
        env, [=]() { awq_search_clip(W, N, K, H, f, grid, shrink, wp, mvp); },
        [oRef](Napi::Env) -> Napi::Value { return oRef->Value(); }, {info[0], info[3], o});
  });
}

Napi::Object scale_result(Napi::Env e, Napi::Value scales, const AwqScaleResult& r) {
  auto o = Napi::Object::New(e);
  o.Set("scales", scales);
  o.Set("best", r.best);
  o.Set("bestRatio", r.best_ratio);
  auto l = Napi::Array::New(e, r.losses.size());
  for (size_t i = 0; i < r.losses.size(); i++) l.Set((uint32_t)i, r.losses[i]);
  o.Set("losses", l);
  return o;
}

Napi::Value AwqSearchScaleX(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t N = integer(env, arg(info, 1, "N"), "N", 1, kMaxDim), K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
    const int64_t n = integer(env, arg(info, 4, "n"), "n", 1, kMaxDim);
    const float* W = typed_array<float>(env, arg(info, 0, "W"), "W", (size_t)(N * K));
    const float* X = typed_array<float>(env, arg(info, 3, "X"), "X", (size_t)(n * K));
    const float* xm = typed_array<float>(env, arg(info, 5, "xMeanAbs"), "xMeanAbs", (size_t)K);
    const QuantFormat f = read_format(env, arg(info, 6, "fmt"), "fmt");
    const int grid = (int)integer(env, arg(info, 7, "nGrid"), "nGrid", 1, 1000);
    auto s = Napi::Float32Array::New(env, (size_t)K);
    float* sp = s.Data();
    auto sRef = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(s));
    auto res = std::make_shared<AwqScaleResult>();
    return run_async(
        env, [=]() { *res = awq_search_scale_x(W, N, K, X, n, xm, f, grid, sp); },
        [sRef, res](Napi::Env e) -> Napi::Value { return scale_result(e, sRef->Value(), *res); },
        {info[0], info[3], info[5], s});
  });
}

Napi::Value AwqSearchClipX(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t N = integer(env, arg(info, 1, "N"), "N", 1, kMaxDim), K = integer(env, arg(info, 2, "K"), "K", 1, kMaxDim);
    const int64_t n = integer(env, arg(info, 4, "n"), "n", 1, kMaxDim);
    const float* W = typed_array<float>(env, arg(info, 0, "W"), "W", (size_t)(N * K));
    const float* X = typed_array<float>(env, arg(info, 3, "X"), "X", (size_t)(n * K));
    const QuantFormat f = read_format(env, arg(info, 5, "fmt"), "fmt");
    const int grid = (int)integer(env, arg(info, 6, "nGrid"), "nGrid", 1, 1000);
    const double shrink = number(env, arg(info, 7, "maxShrink"), "maxShrink");
    if (!(shrink >= 0 && shrink < 1)) range_error(env, "maxShrink: expected a number in [0, 1), got " + std::to_string(shrink));
    const int64_t G = n_groups(K, f.group_size);
    auto w = Napi::Float32Array::New(env, (size_t)(N * K));
    auto mv = Napi::Float32Array::New(env, (size_t)(N * G));
    float* wp = w.Data();
    float* mvp = mv.Data();
    auto o = Napi::Object::New(env);
    o.Set("w", w);
    o.Set("maxVal", mv);
    auto oRef = std::make_shared<Napi::ObjectReference>(Napi::Persistent(o));
    return run_async(
        env, [=]() { awq_search_clip_x(W, N, K, X, n, f, grid, shrink, wp, mvp); },
        [oRef](Napi::Env) -> Napi::Value { return oRef->Value(); }, {info[0], info[3], o});
  });
}

Napi::Value SmoothquantScales(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t N = integer(env, arg(info, 2, "N"), "N", 1, kMaxDim), K = integer(env, arg(info, 3, "K"), "K", 1, kMaxDim);
    const float* am = typed_array<float>(env, arg(info, 0, "actMax"), "actMax", (size_t)K);
    const float* W = typed_array<float>(env, arg(info, 1, "W"), "W", (size_t)(N * K));
    const double alpha = number(env, arg(info, 4, "alpha"), "alpha");
    if (!(alpha >= 0 && alpha <= 1)) range_error(env, "alpha: expected a number in [0, 1], got " + std::to_string(alpha));
    auto s = Napi::Float32Array::New(env, (size_t)K);
    float* sp = s.Data();
    auto sRef = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(s));
    return run_async(
        env, [=]() { smoothquant_scales(am, W, N, K, alpha, sp); },
        [sRef](Napi::Env) -> Napi::Value { return sRef->Value(); }, {info[0], info[1], s});
  });
}

Napi::Value UpperCholeskyOfInverse(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int64_t K = integer(env, arg(info, 1, "K"), "K", 1, 1 << 16);
    const float* H = typed_array<float>(env, arg(info, 0, "H"), "H", (size_t)(K * K));
    auto u = Napi::Float32Array::New(env, (size_t)(K * K));
    float* up = u.Data();
    auto uRef = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(u));
    return run_async(
        env, [=]() { upper_cholesky_of_inverse(H, K, up); },
        [uRef](Napi::Env) -> Napi::Value { return uRef->Value(); }, {info[0], u});
  });
}

}  // namespace

void init_calib_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("rtnQuantize", Napi::Function::New(env, RtnQuantize, "rtnQuantize"));
  exports.Set("gptqQuantize", Napi::Function::New(env, GptqQuantize, "gptqQuantize"));
  exports.Set("awqSearchScale", Napi::Function::New(env, AwqSearchScale, "awqSearchScale"));
  exports.Set("awqSearchClip", Napi::Function::New(env, AwqSearchClip, "awqSearchClip"));
  exports.Set("awqSearchScaleX", Napi::Function::New(env, AwqSearchScaleX, "awqSearchScaleX"));
  exports.Set("awqSearchClipX", Napi::Function::New(env, AwqSearchClipX, "awqSearchClipX"));
  exports.Set("smoothquantScales", Napi::Function::New(env, SmoothquantScales, "smoothquantScales"));
  exports.Set("upperCholeskyOfInverse", Napi::Function::New(env, UpperCholeskyOfInverse, "upperCholeskyOfInverse"));
}

}  // namespace quanteval::napi
