// N-API bindings of the KV-cache and decoder-step kernels (kernels.h): kvStore, attentionDecode, attentionPrefill,
// rmsnorm, ropeInvFreq, ropeApply, siluMul, softmax, logSoftmaxGather, logSoftmaxTopk, embedding.
//
// Every binding takes one options object. Inputs are read zero-copy from TypedArrays; outputs are JS-owned
// TypedArrays allocated here (or the input itself for the in-place ops ropeApply and softmax). Every argument is
// validated on the calling thread — types, lengths against shapes, ids and targets in range, head counts — so a bad
// call throws a TypeError / RangeError naming the field, what was expected and what was given. The kernels then run
// in an AsyncWorker and the call returns a Promise (all but ropeInvFreq, which is tiny and synchronous).
// `impl: "ref" | "fast"` (default "fast") picks the scalar reference or the dispatching fast kernel.
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "modules.h"
#include "quanteval/kernels.h"

namespace quanteval::napi {
namespace {

// ── Option readers ──────────────────────────────────────────────────────────────────────────────────────────
struct Opts {
  Napi::Env env;
  Napi::Object o;
  std::string fn;  // binding name, prefixes every message
  std::string name(const std::string& f) const { return fn + ": " + f; }
  bool has(const char* f) const { return o.Has(f) && !o.Get(f).IsUndefined(); }
  Napi::Value get(const char* f) const { return o.Get(f); }
  template <typename T>
  T* array(const char* f, size_t len = kAnyLength) const { return typed_array<T>(env, get(f), name(f), len); }
  size_t length(const char* f) const { return get(f).As<Napi::TypedArray>().ElementLength(); }
  int64_t integer(const char* f, int64_t lo, int64_t hi) const { return napi::integer(env, get(f), name(f), lo, hi); }
  int64_t integer(const char* f, int64_t lo, int64_t hi, int64_t dflt) const { return has(f) ? integer(f, lo, hi) : dflt; }
  double number(const char* f) const { return napi::number(env, get(f), name(f)); }
  double number(const char* f, double dflt) const { return has(f) ? number(f) : dflt; }
  std::string string(const char* f) const { return napi::string(env, get(f), name(f)); }
  [[noreturn]] void range(const std::string& msg) const { range_error(env, fn + ": " + msg); }
  [[noreturn]] void type(const std::string& msg) const { type_error(env, fn + ": " + msg); }
};

Opts options(const Napi::CallbackInfo& info, const char* fn) {
  auto env = info.Env();
  return Opts{env, object(env, arg(info, 0, std::string(fn) + " options"), std::string(fn) + " options"), fn};
}

// impl: "ref" | "fast" (default fast).
bool use_ref(const Opts& o) {
  if (!o.has("impl")) return false;
  const auto s = o.string("impl");
  if (s == "ref") return true;
  if (s == "fast") return false;
  o.range("impl: expected 'ref' or 'fast', got '" + s + "'");
}

// obj[key] as a KV element type ("f32" | "f16" | "i8" | "i4" | "i3" | "i2"); `field` names obj in messages.
KVType kv_type(const Opts& o, const Napi::Object& obj, const std::string& field, const char* key = "type") {
  auto v = obj.Get(key);
  const auto s = string(o.env, v, o.name(field + "." + key));
  if (s == "f32") return KVType::F32;
  if (s == "f16") return KVType::F16;
  if (s == "i8") return KVType::I8;
  if (s == "i4") return KVType::I4;
  if (s == "i3") return KVType::I3;
  if (s == "i2") return KVType::I2;
  o.range(field + "." + key + ": expected one of f32, f16, i8, i4, i3, i2, got '" + s + "'");
}

// The sliding window of the attention calls: option `window` (0 or absent = none).
int64_t window_opt(const Opts& o) { return o.integer("window", 0, 1LL << 40, 0); }

std::string shape(std::initializer_list<int64_t> dims) {
  std::string s = "[";
  for (auto it = dims.begin(); it != dims.end(); ++it) s += (it == dims.begin() ? "" : ", ") + std::to_string(*it);
  return s + "]";
}

// A typed array `field` whose element count must be exactly `want` (shape given for the message).
template <typename T>
T* sized(const Opts& o, const char* field, size_t want, const std::string& shp) {
  T* p = o.array<T>(field);
  if (o.length(field) != want)
    o.range(std::string(field) + ": expected " + std::to_string(want) + " elements " + shp + ", got " +
            std::to_string(o.length(field)));
  return p;
}

// One sequence's cache: { type, kType?, vType?, nKvHeads, headDim, k, v, kScale?, kZero?, vScale?, vZero? }. `type`
// is the element type of K and V unless kType / vType override it (mixed caches such as K i8 + V i4). k/v are any
// TypedArray holding [tokens, nKvHeads, bytes per head of their type] (Float32Array for f32, Uint16Array for f16,
// Uint8Array for i8/i4 are natural); the capacity in tokens is k's byte length / (nKvHeads · K bytes per head), and
// v must hold as many tokens. kScale/kZero are required when K is quantized, vScale/vZero when V is.
struct KVArg {
  KVView view;
  int64_t capacity = 0;
  std::vector<Napi::Value> keep;
};

KVArg read_kv(const Opts& o, const Napi::Value& val, const std::string& field) {
  auto obj = object(o.env, val, o.name(field));
  KVArg a;
  KVView& w = a.view;
  const bool has_type = obj.Has("type") && !obj.Get("type").IsUndefined();
  auto has = [&](const char* key) { return obj.Has(key) && !obj.Get(key).IsUndefined(); };
  if (!has_type && !(has("kType") && has("vType")))
    o.type(field + ": expected `type` (K and V) or both `kType` and `vType`");
  w.k_type = has("kType") ? kv_type(o, obj, field, "kType") : kv_type(o, obj, field);
  w.v_type = has("vType") ? kv_type(o, obj, field, "vType") : kv_type(o, obj, field);
  w.n_kv_heads = (int)integer(o.env, obj.Get("nKvHeads"), o.name(field + ".nKvHeads"), 1, 1 << 16);
  w.head_dim = (int)integer(o.env, obj.Get("headDim"), o.name(field + ".headDim"), 1, 1 << 16);
  if ((w.k_type == KVType::I4 || w.v_type == KVType::I4) && w.head_dim % 2)
    o.range(field + ".headDim: expected an even head dim for i4 (two codes a byte), got " + std::to_string(w.head_dim));
  const size_t krow = kv_bytes_per_head(w.k_type, w.head_dim) * w.n_kv_heads;  // K bytes per token
  const size_t vrow = kv_bytes_per_head(w.v_type, w.head_dim) * w.n_kv_heads;  // V bytes per token
  auto k = obj.Get("k"), v = obj.Get("v");
  w.k = bytes_of(o.env, k, o.name(field + ".k"));
  const size_t kb = k.As<Napi::TypedArray>().ByteLength();
  if (kb % krow)
    o.range(field + ".k: expected a multiple of " + std::to_string(krow) +
            " bytes (nKvHeads × K bytes per head), got " + std::to_string(kb));
  a.capacity = (int64_t)(kb / krow);
  // pos0: the first position the arrays hold (row 0 is position pos0; a bounded sliding-window cache).
  if (has("pos0")) w.pos0 = integer(o.env, obj.Get("pos0"), o.name(field + ".pos0"), 0, 1LL << 40);
  w.v = bytes_of(o.env, v, o.name(field + ".v"), (size_t)a.capacity * vrow);
  a.keep = {k, v};
  const size_t n = (size_t)a.capacity * w.n_kv_heads;
  auto scales = [&](const char* sname, const char* zname, const float** sp, const float** zp) {
    auto s = obj.Get(sname), z = obj.Get(zname);
    *sp = typed_array<float>(o.env, s, o.name(field + "." + sname), n);
    *zp = typed_array<float>(o.env, z, o.name(field + "." + zname), n);
    a.keep.push_back(s);
    a.keep.push_back(z);
  };
  if (kv_quantized(w.k_type)) scales("kScale", "kZero", &w.k_scale, &w.k_zero);
  if (kv_quantized(w.v_type)) scales("vScale", "vZero", &w.v_scale, &w.v_zero);
  return a;
}

Napi::Float32Array new_f32(Napi::Env env, size_t n) { return Napi::Float32Array::New(env, n); }

// ── Bindings ────────────────────────────────────────────────────────────────────────────────────────────────
// kvStore({ x: Float32Array [T, nKvHeads, headDim], type, nKvHeads, headDim, dst, scale?, zero?, offset = 0 })
// writes T tokens at token `offset` of a cache region dst [capacity, nKvHeads, bytes per head] (and scale/zero
// [capacity, nKvHeads] for i8/i4/i3/i2). Resolves with undefined.
Napi::Value KvStore(const Napi::CallbackInfo& info) {
  auto o = options(info, "kvStore");
  const bool ref = use_ref(o);
  const KVType type = kv_type(o, o.o, "options");
  const int H = (int)o.integer("nKvHeads", 1, 1 << 16), D = (int)o.integer("headDim", 1, 1 << 16);
  if (type == KVType::I4 && D % 2) o.range("headDim: expected an even head dim for i4, got " + std::to_string(D));
  const float* x = o.array<float>("x");
  const size_t xn = o.length("x");
  if (xn % ((size_t)H * D))
    o.range("x: expected a multiple of nKvHeads × headDim = " + std::to_string((size_t)H * D) + " elements, got " +
            std::to_string(xn));
  const int64_t T = (int64_t)(xn / ((size_t)H * D));
  const size_t row = kv_bytes_per_head(type, D) * H;
  uint8_t* dst = bytes_of(o.env, o.get("dst"), o.name("dst"));
  const size_t cap = o.get("dst").As<Napi::TypedArray>().ByteLength() / row;
  const int64_t off = o.integer("offset", 0, 1LL << 40, 0);
  if ((size_t)(off + T) > cap)
    o.range("dst: holds " + std::to_string(cap) + " tokens, cannot store tokens [" + std::to_string(off) + ", " +
            std::to_string(off + T) + ")");
  float *sc = nullptr, *zp = nullptr;
  std::vector<Napi::Value> keep = {o.get("x"), o.get("dst")};
  if (kv_quantized(type)) {
    sc = o.array<float>("scale");
    zp = o.array<float>("zero");
    for (const char* f : {"scale", "zero"})
      if (o.length(f) < (size_t)(off + T) * H)
        o.range(std::string(f) + ": expected at least " + std::to_string((off + T) * H) + " elements ((offset + T) × nKvHeads), got " +
                std::to_string(o.length(f)));
    keep.push_back(o.get("scale"));
    keep.push_back(o.get("zero"));
    sc += off * H;
    zp += off * H;
  }
  dst += off * row;
  return run_async(
      o.env, [=] { (ref ? kv_store_ref : kv_store)(x, T, H, D, type, dst, sc, zp); },
      [](Napi::Env env) { return env.Undefined(); }, keep);
}

// attentionDecode({ q: Float32Array [B, nHeads, headDim], nHeads, kv: KV[B], lens: number[] | Int32Array (B),
// scale? = 1/sqrt(headDim), window = 0, repeat = 1 }) -> Promise<Float32Array [B, nHeads, headDim]>. `repeat` runs the kernel
// that many times in one call, so benchmarks time the kernel rather than the Promise round trip. `layers` = L > 1
// (benchmarks): kv holds L × B caches, kv[l · B + b], and run i reads layer i % L — like a model's layers, so that
// every run streams its cache from memory instead of finding the previous run's in the last-level cache.
Napi::Value AttentionDecode(const Napi::CallbackInfo& info) {
  auto o = options(info, "attentionDecode");
  const bool ref = use_ref(o);
  const int n_heads = (int)o.integer("nHeads", 1, 1 << 16);
  const int64_t window = window_opt(o);
  auto kvv = o.get("kv");
  if (!kvv.IsArray()) o.type("kv: expected an array of per-sequence caches, got " + describe(kvv));
  auto arr = kvv.As<Napi::Array>();
  const int64_t layers = o.integer("layers", 1, 1 << 20, 1);
  const int64_t n_kv = arr.Length();
  if (n_kv < 1) o.range("kv: expected at least one sequence, got 0");
  if (n_kv % layers)
    o.range("kv: expected layers × B caches (layers = " + std::to_string(layers) + "), got " + std::to_string(n_kv));
  const int64_t B = n_kv / layers;
  auto views = std::make_shared<std::vector<KVView>>();
  std::vector<Napi::Value> keep = {o.get("q")};
  // Per sequence, the smallest over layers of the last position + 1 a cache holds (pos0 + rows).
  std::vector<int64_t> caps(B, std::numeric_limits<int64_t>::max());
  for (int64_t i = 0; i < n_kv; i++) {
    const int64_t b = i;  // index into kv (layer i / B, sequence i % B)
    auto a = read_kv(o, arr.Get((uint32_t)b), "kv[" + std::to_string(b) + "]");
    if (b > 0 && a.view.head_dim != (*views)[0].head_dim)
      o.range("kv[" + std::to_string(b) + "].headDim: expected " + std::to_string((*views)[0].head_dim) +
              " (as kv[0]), got " + std::to_string(a.view.head_dim));
    if (n_heads % a.view.n_kv_heads)
      o.range("nHeads: expected a multiple of kv[" + std::to_string(b) + "].nKvHeads = " +
              std::to_string(a.view.n_kv_heads) + ", got " + std::to_string(n_heads));
    views->push_back(a.view);
    views->back().window = window;
    caps[i % B] = std::min(caps[i % B], a.view.pos0 + a.capacity);
    keep.insert(keep.end(), a.keep.begin(), a.keep.end());
  }
  const int D = (*views)[0].head_dim;
  const float* q = sized<float>(o, "q", (size_t)B * n_heads * D, shape({B, n_heads, D}));
  auto lens = std::make_shared<std::vector<int64_t>>(B);
  auto lv = o.get("lens");
  if (lv.IsArray()) {
    auto la = lv.As<Napi::Array>();
    if (la.Length() != (uint32_t)B) o.range("lens: expected " + std::to_string(B) + " lengths, got " + std::to_string(la.Length()));
    for (int64_t b = 0; b < B; b++)
      (*lens)[b] = integer(o.env, la.Get((uint32_t)b), o.name("lens[" + std::to_string(b) + "]"), 1, caps[b]);
  } else {
    const int32_t* l = sized<int32_t>(o, "lens", (size_t)B, shape({B}));
    for (int64_t b = 0; b < B; b++)
      if (l[b] < 1 || l[b] > caps[b])
        o.range("lens[" + std::to_string(b) + "]: expected an integer in [1, " + std::to_string(caps[b]) +
                "] (the cache's pos0 + capacity), got " + std::to_string(l[b]));
      else (*lens)[b] = l[b];
  }
  const float scale = (float)o.number("scale", 1.0 / std::sqrt((double)D));
  const int64_t repeat = o.integer("repeat", 1, 1000000, 1);  // benchmarks: run the kernel `repeat` times in one call
  auto out = new_f32(o.env, (size_t)B * n_heads * D);
  float* op = out.Data();
  keep.push_back(out);
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(
      o.env,
      [=] {
        for (int64_t i = 0; i < repeat; i++)
          (ref ? attention_decode_ref : attention_decode)(q, B, n_heads, views->data() + (i % layers) * B, lens->data(),
                                                          scale, op);
      },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); }, keep);
}

// attentionPrefill({ q: Float32Array [Tq, nHeads, headDim], nHeads, kv: KV, pos0 = 0, scale?, window = 0,
// repeat = 1 })
// -> Promise<Float32Array [Tq, nHeads, headDim]>; the cache must hold pos0 + Tq tokens.
Napi::Value AttentionPrefill(const Napi::CallbackInfo& info) {
  auto o = options(info, "attentionPrefill");
  const bool ref = use_ref(o);
  const int n_heads = (int)o.integer("nHeads", 1, 1 << 16);
  auto a = read_kv(o, o.get("kv"), "kv");
  a.view.window = window_opt(o);
  if (n_heads % a.view.n_kv_heads)
    o.range("nHeads: expected a multiple of kv.nKvHeads = " + std::to_string(a.view.n_kv_heads) + ", got " +
            std::to_string(n_heads));
  const int D = a.view.head_dim;
  const float* q = o.array<float>("q");
  const size_t qn = o.length("q");
  if (qn % ((size_t)n_heads * D))
    o.range("q: expected a multiple of nHeads × headDim = " + std::to_string((size_t)n_heads * D) + " elements, got " +
            std::to_string(qn));
  const int64_t Tq = (int64_t)(qn / ((size_t)n_heads * D));
  const int64_t pos0 = o.integer("pos0", 0, 1LL << 40, 0);
  if (pos0 + Tq > a.view.pos0 + a.capacity)
    o.range("kv: holds " + std::to_string(a.capacity) + " tokens (positions [" + std::to_string(a.view.pos0) + ", " +
            std::to_string(a.view.pos0 + a.capacity) + ")), the queries need pos0 + Tq = " + std::to_string(pos0 + Tq));
  const float scale = (float)o.number("scale", 1.0 / std::sqrt((double)D));
  const int64_t repeat = o.integer("repeat", 1, 1000000, 1);
  auto out = new_f32(o.env, qn);
  float* op = out.Data();
  std::vector<Napi::Value> keep = a.keep;
  keep.push_back(o.get("q"));
  keep.push_back(out);
  auto view = std::make_shared<KVView>(a.view);
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(
      o.env,
      [=] {
        for (int64_t i = 0; i < repeat; i++)
          (ref ? attention_prefill_ref : attention_prefill)(q, Tq, n_heads, *view, pos0, scale, op);
      },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); }, keep);
}

// rmsnorm({ x: Float32Array [M, D], w: Float32Array [D], eps = 1e-6 }) -> Promise<Float32Array [M, D]>
Napi::Value Rmsnorm(const Napi::CallbackInfo& info) {
  auto o = options(info, "rmsnorm");
  const bool ref = use_ref(o);
  const float* w = o.array<float>("w");
  const int64_t D = (int64_t)o.length("w");
  if (D < 1) o.range("w: expected at least 1 element, got 0");
  const float* x = o.array<float>("x");
  const size_t n = o.length("x");
  if (n % D) o.range("x: expected a multiple of w.length = " + std::to_string(D) + " elements, got " + std::to_string(n));
  const float eps = (float)o.number("eps", 1e-6);
  if (!(eps >= 0)) o.range("eps: expected a number >= 0, got " + std::to_string(eps));
  auto out = new_f32(o.env, n);
  float* op = out.Data();
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(
      o.env, [=] { (ref ? rmsnorm_ref : rmsnorm)(x, w, (int64_t)(n / D), D, eps, op); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); }, {o.get("x"), o.get("w"), out});
}

// ropeInvFreq({ headDim, rotaryDim = headDim, theta = 10000, scaling = "none" | "llama3" | "linear", factor = 1,
// lowFreqFactor = 1, highFreqFactor = 4, originalMaxPosition = 8192 }) -> Float32Array [rotaryDim / 2] (sync)
Napi::Value RopeInvFreq(const Napi::CallbackInfo& info) {
  auto o = options(info, "ropeInvFreq");
  RopeConfig c;
  c.head_dim = (int)o.integer("headDim", 2, 1 << 16);
  c.rotary_dim = (int)o.integer("rotaryDim", 2, c.head_dim, c.head_dim);
  if (c.rotary_dim % 2) o.range("rotaryDim: expected an even number, got " + std::to_string(c.rotary_dim));
  c.theta = o.number("theta", 10000.0);
  if (!(c.theta > 0)) o.range("theta: expected a number > 0, got " + std::to_string(c.theta));
  const std::string sc = o.has("scaling") ? o.string("scaling") : "none";
  if (sc == "none" || sc == "default") c.scaling = 0;
  else if (sc == "llama3") c.scaling = 1;
  else if (sc == "linear") c.scaling = 2;
  else o.range("scaling: expected one of none, llama3, linear, got '" + sc + "'");
  c.factor = o.number("factor", 1.0);
  c.low_freq_factor = o.number("lowFreqFactor", 1.0);
  c.high_freq_factor = o.number("highFreqFactor", 4.0);
  c.original_max_position = o.number("originalMaxPosition", 8192.0);
  if (c.scaling && !(c.factor > 0)) o.range("factor: expected a number > 0, got " + std::to_string(c.factor));
  if (c.scaling == 1 && !(c.low_freq_factor > 0 && c.high_freq_factor > c.low_freq_factor))
    o.range("lowFreqFactor/highFreqFactor: expected 0 < lowFreqFactor < highFreqFactor, got " +
            std::to_string(c.low_freq_factor) + ", " + std::to_string(c.high_freq_factor));
  if (c.scaling == 1 && !(c.original_max_position > 0))
    o.range("originalMaxPosition: expected a number > 0, got " + std::to_string(c.original_max_position));
  auto out = new_f32(o.env, c.rotary_dim / 2);
  guarded(o.env, [&] { rope_inv_freq(c, out.Data()); });
  return out;
}

// ropeApply({ x: Float32Array [T, nHeads, headDim], nHeads, headDim, rotaryDim = headDim, positions: Int32Array [T],
// invFreq: Float32Array [rotaryDim / 2] }) -> Promise<x> (rotated in place)
Napi::Value RopeApply(const Napi::CallbackInfo& info) {
  auto o = options(info, "ropeApply");
  const bool ref = use_ref(o);
  const int H = (int)o.integer("nHeads", 1, 1 << 16), D = (int)o.integer("headDim", 2, 1 << 16);
  const int R = (int)o.integer("rotaryDim", 2, D, D);
  if (R % 2) o.range("rotaryDim: expected an even number, got " + std::to_string(R));
  float* x = o.array<float>("x");
  const size_t n = o.length("x");
  if (n % ((size_t)H * D))
    o.range("x: expected a multiple of nHeads × headDim = " + std::to_string((size_t)H * D) + " elements, got " +
            std::to_string(n));
  const int64_t T = (int64_t)(n / ((size_t)H * D));
  const int32_t* pos = sized<int32_t>(o, "positions", (size_t)T, shape({T}));
  const float* f = sized<float>(o, "invFreq", (size_t)R / 2, shape({R / 2}));
  auto xv = o.get("x");
  auto x_ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(xv));
  return run_async(
      o.env, [=] { (ref ? rope_apply_ref : rope_apply)(x, T, H, D, R, pos, f); },
      [x_ref](Napi::Env) -> Napi::Value { return x_ref->Value(); }, {xv, o.get("positions"), o.get("invFreq")});
}

// siluMul({ gate: Float32Array [n], up: Float32Array [n] }) -> Promise<Float32Array [n]>
Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  auto o = options(info, "siluMul");
  const bool ref = use_ref(o);
  const float* g = o.array<float>("gate");
  const size_t n = o.length("gate");
  const float* u = sized<float>(o, "up", n, "(as gate)");
  auto out = new_f32(o.env, n);
  float* op = out.Data();
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(
      o.env, [=] { (ref ? silu_mul_ref : silu_mul)(g, u, (int64_t)n, op); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); }, {o.get("gate"), o.get("up"), out});
}

// softmax({ x: Float32Array [M, N], n: N }) -> Promise<x> (rows normalized in place)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  auto o = options(info, "softmax");
  const bool ref = use_ref(o);
  float* x = o.array<float>("x");
  const size_t len = o.length("x");
  const int64_t N = o.integer("n", 1, 1LL << 40);
  if (len % N) o.range("x: expected a multiple of n = " + std::to_string(N) + " elements, got " + std::to_string(len));
  auto xv = o.get("x");
  auto x_ref = std::make_shared<Napi::Reference<Napi::Value>>(Napi::Persistent(xv));
  return run_async(
      o.env, [=] { (ref ? softmax_ref : softmax)(x, (int64_t)len / N, N); },
      [x_ref](Napi::Env) -> Napi::Value { return x_ref->Value(); }, {xv});
}

// Logits [M, V] with V = options.vocab.
const float* logits_arg(const Opts& o, int64_t& M, int64_t& V) {
  V = o.integer("vocab", 1, 1LL << 40);
  const float* l = o.array<float>("logits");
  const size_t n = o.length("logits");
  if (n % V) o.range("logits: expected a multiple of vocab = " + std::to_string(V) + " elements, got " + std::to_string(n));
  M = (int64_t)n / V;
  return l;
}

// logSoftmaxGather({ logits: Float32Array [M, V], vocab: V, targets: Int32Array [M] }) -> Promise<Float32Array [M]>
Napi::Value LogSoftmaxGather(const Napi::CallbackInfo& info) {
  auto o = options(info, "logSoftmaxGather");
  const bool ref = use_ref(o);
  int64_t M, V;
  const float* l = logits_arg(o, M, V);
  const int32_t* t = sized<int32_t>(o, "targets", (size_t)M, shape({M}));
  for (int64_t m = 0; m < M; m++)
    if (t[m] < 0 || t[m] >= V)
      o.range("targets[" + std::to_string(m) + "]: expected an id in [0, " + std::to_string(V) + "), got " +
              std::to_string(t[m]));
  auto out = new_f32(o.env, M);
  float* op = out.Data();
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(
      o.env, [=] { (ref ? log_softmax_gather_ref : log_softmax_gather)(l, M, V, t, op); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); }, {o.get("logits"), o.get("targets"), out});
}

// logSoftmaxTopk({ logits: Float32Array [M, V], vocab: V, k }) -> Promise<{ idx: Int32Array [M, k],
// logp: Float32Array [M, k] }>, sorted descending, ties to the lower id.
Napi::Value LogSoftmaxTopk(const Napi::CallbackInfo& info) {
  auto o = options(info, "logSoftmaxTopk");
  const bool ref = use_ref(o);
  int64_t M, V;
  const float* l = logits_arg(o, M, V);
  const int k = (int)o.integer("k", 1, std::min<int64_t>(V, 1 << 20));
  auto idx = Napi::Int32Array::New(o.env, (size_t)M * k);
  auto lp = new_f32(o.env, (size_t)M * k);
  int32_t* ip = idx.Data();
  float* lpp = lp.Data();
  auto res = Napi::Object::New(o.env);
  res.Set("idx", idx);
  res.Set("logp", lp);
  auto res_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(res));
  return run_async(
      o.env, [=] { (ref ? log_softmax_topk_ref : log_softmax_topk)(l, M, V, k, ip, lpp); },
      [res_ref](Napi::Env) -> Napi::Value { return res_ref->Value(); }, {o.get("logits")});
}

// embedding({ table: Float32Array | Uint16Array [V, D], dtype: "f32" | "f16" | "bf16", dim: D, ids: Int32Array [n] })
// -> Promise<Float32Array [n, D]>
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  auto o = options(info, "embedding");
  const bool ref = use_ref(o);
  const std::string ds = o.string("dtype");
  DType dt;
  if (ds == "f32") dt = DType::F32;
  else if (ds == "f16") dt = DType::F16;
  else if (ds == "bf16") dt = DType::BF16;
  else o.range("dtype: expected one of f32, f16, bf16, got '" + ds + "'");
  const int64_t D = o.integer("dim", 1, 1LL << 30);
  const void* table = dt == DType::F32 ? (const void*)o.array<float>("table") : (const void*)o.array<uint16_t>("table");
  const size_t tn = o.length("table");
  if (tn % D) o.range("table: expected a multiple of dim = " + std::to_string(D) + " elements, got " + std::to_string(tn));
  const int64_t V = (int64_t)tn / D;
  if (V < 1) o.range("table: expected at least one row, got 0");
  const int32_t* ids = o.array<int32_t>("ids");
  const int64_t n = (int64_t)o.length("ids");
  for (int64_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= V)
      o.range("ids[" + std::to_string(i) + "]: expected an id in [0, " + std::to_string(V) + "), got " + std::to_string(ids[i]));
  auto out = new_f32(o.env, (size_t)n * D);
  float* op = out.Data();
  auto out_ref = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(out));
  return run_async(
      o.env, [=] { (ref ? embedding_ref : embedding)(table, dt, V, D, ids, n, op); },
      [out_ref](Napi::Env) -> Napi::Value { return out_ref->Value(); }, {o.get("table"), o.get("ids"), out});
}

// allocBuffer(bytes) -> an ordinary (zeroed, V8-owned) ArrayBuffer whose whole 2 MiB pages are advised
// MADV_HUGEPAGE before anything touches them, for KV caches that attention reads every step (the edges below the
// first and past the last 2 MiB boundary stay on 4 KiB pages). An external ArrayBuffer on huge_alloc.h's memory was
// tried first: V8 does not count external memory towards its GC triggers in a loop that allocates little else, and
// 2000 dropped 8 MiB caches reached 16 GB of RSS before a collection; these are collected like any ArrayBuffer.
Napi::Value AllocBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t bytes = integer(env, arg(info, 0, "bytes"), "bytes", 0, (int64_t)1 << 40);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, (size_t)bytes);
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t p = reinterpret_cast<uintptr_t>(ab.Data());
  const uintptr_t lo = (p + kHuge - 1) & ~(kHuge - 1), hi = (p + (uintptr_t)bytes) & ~(kHuge - 1);
  if (bytes > 0 && hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // advice: failure is harmless
#endif
  return ab;
}

}  // namespace

void init_ops_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("kvStore", Napi::Function::New(env, KvStore, "kvStore"));
  exports.Set("allocBuffer", Napi::Function::New(env, AllocBuffer, "allocBuffer"));
  exports.Set("attentionDecode", Napi::Function::New(env, AttentionDecode, "attentionDecode"));
  exports.Set("attentionPrefill", Napi::Function::New(env, AttentionPrefill, "attentionPrefill"));
  exports.Set("rmsnorm", Napi::Function::New(env, Rmsnorm, "rmsnorm"));
  exports.Set("ropeInvFreq", Napi::Function::New(env, RopeInvFreq, "ropeInvFreq"));
  exports.Set("ropeApply", Napi::Function::New(env, RopeApply, "ropeApply"));
  exports.Set("siluMul", Napi::Function::New(env, SiluMul, "siluMul"));
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("logSoftmaxGather", Napi::Function::New(env, LogSoftmaxGather, "logSoftmaxGather"));
  exports.Set("logSoftmaxTopk", Napi::Function::New(env, LogSoftmaxTopk, "logSoftmaxTopk"));
  exports.Set("embedding", Napi::Function::New(env, Embedding, "embedding"));
}

}  // namespace quanteval::napi
