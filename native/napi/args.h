// Argument validation for the N-API bindings. Every binding reads its arguments through these helpers, so a wrong
// type, shape, dtype, size or value becomes a TypeError / RangeError that names the argument, what was expected and
// what was given — never an abort. Requires NAPI_CPP_EXCEPTIONS (errors are thrown as Napi::Error).
#pragma once
#include <napi.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "quanteval/formats.h"

namespace quanteval::napi {

[[noreturn]] inline void type_error(Napi::Env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] inline void range_error(Napi::Env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

inline const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array"; case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray"; case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array"; case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array"; case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array"; case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

inline std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsTypedArray()) {
    auto ta = v.As<Napi::TypedArray>();
    return std::string(typed_array_name(ta.TypedArrayType())) + "(" + std::to_string(ta.ElementLength()) + ")";
  }
  if (v.IsArray()) return "Array";
  if (v.IsNumber()) return "number " + std::to_string(v.As<Napi::Number>().DoubleValue());
  if (v.IsString()) return "string '" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsBoolean()) return "boolean";
  if (v.IsFunction()) return "function";
  if (v.IsObject()) return "object";
  return "value";
}

// A typed array of the given element type; `expected_len` (elements) checked unless SIZE_MAX.
template <typename T>
struct TypedArrayTraits;
template <> struct TypedArrayTraits<float> { static constexpr napi_typedarray_type type = napi_float32_array; };
template <> struct TypedArrayTraits<double> { static constexpr napi_typedarray_type type = napi_float64_array; };
template <> struct TypedArrayTraits<int32_t> { static constexpr napi_typedarray_type type = napi_int32_array; };
template <> struct TypedArrayTraits<uint32_t> { static constexpr napi_typedarray_type type = napi_uint32_array; };
template <> struct TypedArrayTraits<int8_t> { static constexpr napi_typedarray_type type = napi_int8_array; };
template <> struct TypedArrayTraits<uint8_t> { static constexpr napi_typedarray_type type = napi_uint8_array; };
template <> struct TypedArrayTraits<uint16_t> { static constexpr napi_typedarray_type type = napi_uint16_array; };

constexpr size_t kAnyLength = std::numeric_limits<size_t>::max();

template <typename T>
T* typed_array(Napi::Env env, const Napi::Value& v, const std::string& name, size_t expected_len = kAnyLength) {
  constexpr auto want = TypedArrayTraits<T>::type;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != want)
    type_error(env, name + ": expected " + typed_array_name(want) + ", got " + describe(v));
  auto ta = v.As<Napi::TypedArray>();
  if (expected_len != kAnyLength && ta.ElementLength() != expected_len)
    range_error(env, name + ": expected " + std::to_string(expected_len) + " elements, got " +
                         std::to_string(ta.ElementLength()));
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

// Raw bytes of any typed array (for tensors whose element type is given separately, e.g. bf16 in a Uint16Array).
inline uint8_t* bytes_of(Napi::Env env, const Napi::Value& v, const std::string& name, size_t expected_bytes = kAnyLength) {
  if (!v.IsTypedArray()) type_error(env, name + ": expected a TypedArray, got " + describe(v));
  auto ta = v.As<Napi::TypedArray>();
  if (expected_bytes != kAnyLength && ta.ByteLength() != expected_bytes)
    range_error(env, name + ": expected " + std::to_string(expected_bytes) + " bytes, got " + std::to_string(ta.ByteLength()));
  return static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
}

inline int64_t integer(Napi::Env env, const Napi::Value& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) type_error(env, name + ": expected an integer, got " + describe(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != (double)(int64_t)d) type_error(env, name + ": expected an integer, got " + describe(v));
  int64_t i = (int64_t)d;
  if (i < lo || i > hi)
    range_error(env, name + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                         std::to_string(i));
  return i;
}

inline double number(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsNumber()) type_error(env, name + ": expected a number, got " + describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

inline bool boolean(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) type_error(env, name + ": expected a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

inline std::string string(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsString()) type_error(env, name + ": expected a string, got " + describe(v));
  return v.As<Napi::String>().Utf8Value();
}

inline Napi::Object object(Napi::Env env, const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction())
    type_error(env, name + ": expected an object, got " + describe(v));
  return v.As<Napi::Object>();
}

// Argument i of a call, or a TypeError naming it when missing.
inline Napi::Value arg(const Napi::CallbackInfo& info, size_t i, const std::string& name) {
  if (i >= info.Length()) type_error(info.Env(), name + ": missing argument " + std::to_string(i));
  return info[i];
}

inline DType dtype_from_string(Napi::Env env, const std::string& s, const std::string& name) {
  if (s == "f32") return DType::F32;
  if (s == "f16") return DType::F16;
  if (s == "bf16") return DType::BF16;
  if (s == "i8") return DType::I8;
  if (s == "u8") return DType::U8;
  if (s == "i32") return DType::I32;
  range_error(env, name + ": expected one of f32, f16, bf16, i8, u8, i32, got '" + s + "'");
}

// Runs `work` on the libuv pool and resolves a Promise with `done(env)`; keeps `keep` (input buffers) alive until
// then. A std::exception thrown by work rejects the promise with an Error carrying its message.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
                std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)),
        done_(std::move(done)) {
    for (auto& v : keep)
      if (v.IsObject()) refs_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    } catch (...) {
      SetError("unknown native error");
    }
  }
  void OnOK() override {
    try {
      deferred_.Resolve(done_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::vector<Napi::ObjectReference> refs_;
};

inline Napi::Promise run_async(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
                               std::vector<Napi::Value> keep = {}) {
  auto* w = new PromiseWorker(env, std::move(work), std::move(done), std::move(keep));
  auto p = w->promise();
  w->Queue();
  return p;
}

// Runs fn and converts std::invalid_argument / std::out_of_range / other std::exception into JS errors.
template <typename F>
auto guarded(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    throw Napi::TypeError::New(env, e.what());
  } catch (const std::out_of_range& e) {
    throw Napi::RangeError::New(env, e.what());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

}  // namespace quanteval::napi
