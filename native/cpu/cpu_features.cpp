#include "quanteval/cpu_features.h"

#include <cstdlib>
#include <cstring>
#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace quanteval {

namespace {
CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    f.fma = c & (1u << 12);
    f.f16c = c & (1u << 29);
    bool osxsave = c & (1u << 27);
    if (!osxsave) return f;
  }
  // XCR0: the OS must save YMM (bits 1,2) and ZMM/opmask (bits 5,6,7) state.
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  bool ymm = (xlo & 6) == 6, zmm = (xlo & 0xe6) == 0xe6;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    f.avx2 = ymm && (b & (1u << 5));
    f.avx512f = zmm && (b & (1u << 16));
    f.avx512bw = zmm && (b & (1u << 30));
    f.avx512vl = zmm && (b & (1u << 31));
    f.avx512vnni = zmm && (c & (1u << 11));
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    f.avxvnni = ymm && (a & (1u << 4));
    f.avx512bf16 = zmm && (a & (1u << 5));
  }
  if (!ymm) f.fma = f.f16c = false;
#endif
  return f;
}

Isa detect_isa(const CpuFeatures& f) {
  Isa isa = Isa::Scalar;
  if (f.avx2 && f.fma && f.f16c) isa = Isa::Avx2;
  if (isa == Isa::Avx2 && f.avx512f && f.avx512bw && f.avx512vl) isa = Isa::Avx512;
  return isa;
}

Isa env_cap() {
  const char* e = std::getenv("QUANTEVAL_ISA");
  if (!e) return Isa::Avx512;
  if (!std::strcmp(e, "scalar")) return Isa::Scalar;
  if (!std::strcmp(e, "avx2")) return Isa::Avx2;
  return Isa::Avx512;
}

Isa g_cap = env_cap();

A8DotMode env_a8_dot() {
  const char* e = std::getenv("QUANTEVAL_VNNI");
  if (e && !std::strcmp(e, "off")) return A8DotMode::Off;
  if (e && !std::strcmp(e, "emulate")) return A8DotMode::Emulate;
  return A8DotMode::Auto;
}

A8DotMode g_a8_dot = env_a8_dot();

ZmmMode env_zmm() {
  const char* e = std::getenv("QUANTEVAL_AVX512");
  return e && !std::strcmp(e, "emulate") ? ZmmMode::Emulate : ZmmMode::Auto;
}

ZmmMode g_zmm = env_zmm();

GemvKernel env_gemv() {
  const char* e = std::getenv("QUANTEVAL_GEMV");
  return e && !std::strcmp(e, "fp32") ? GemvKernel::Fp32 : GemvKernel::Int;
}

GemvKernel g_gemv = env_gemv();
}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

Isa cpu_isa() {
  static const Isa hw = detect_isa(cpu_features());
  return (int)hw < (int)g_cap ? hw : g_cap;
}

void set_isa_cap(Isa cap) { g_cap = cap; }

A8Dot a8_dot() {
  const Isa isa = cpu_isa();
  if (isa < Isa::Avx2) return A8Dot::Scalar;
  if (g_a8_dot == A8DotMode::Off) return A8Dot::Avx2;
  if (g_a8_dot == A8DotMode::Emulate) return A8Dot::Emulated;
  const CpuFeatures& f = cpu_features();
  if (isa >= Isa::Avx512 && f.avx512vnni) return A8Dot::Avx512Vnni;
  if (f.avxvnni) return A8Dot::AvxVnni;
  return A8Dot::Avx2;
}

void set_a8_dot_mode(A8DotMode mode) { g_a8_dot = mode; }

const char* a8_dot_name(A8Dot d) {
  switch (d) {
    case A8Dot::Avx2: return "avx2";
    case A8Dot::Emulated: return "vnni-emulated";
    case A8Dot::AvxVnni: return "avx-vnni";
    case A8Dot::Avx512Vnni: return "avx512-vnni";
    case A8Dot::Scalar: return "scalar";
  }
  return "?";
}

Zmm zmm_kernels() {
  const Isa isa = cpu_isa();
  if (isa < Isa::Avx2) return Zmm::None;
  if (g_zmm == ZmmMode::Emulate) return Zmm::Emulated;
  return isa >= Isa::Avx512 ? Zmm::Native : Zmm::None;
}

void set_zmm_mode(ZmmMode mode) { g_zmm = mode; }

const char* zmm_name(Zmm z) {
  switch (z) {
    case Zmm::None: return "none";
    case Zmm::Native: return "avx512";
    case Zmm::Emulated: return "avx512-emulated";
  }
  return "?";
}

GemvKernel gemv_kernel() { return g_gemv; }

void set_gemv_kernel(GemvKernel k) { g_gemv = k; }

const char* gemv_kernel_name(GemvKernel k) { return k == GemvKernel::Fp32 ? "fp32" : "int"; }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

}  // namespace quanteval
