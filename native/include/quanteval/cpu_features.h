// Run-time CPU feature detection for kernel dispatch. The fast kernels are compiled per ISA with target attributes
// and chosen once per call from these flags; QUANTEVAL_ISA=scalar|avx2|avx512 (env) caps the level, so tests can
// exercise every path the machine supports.
#pragma once

namespace quanteval {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false, avxvnni = false;
};

const CpuFeatures& cpu_features();
// Highest usable level, after the QUANTEVAL_ISA cap. Avx2 requires avx2+fma+f16c; Avx512 requires f+bw+vl.
Isa cpu_isa();
void set_isa_cap(Isa cap);  // for tests and benchmarks
const char* isa_name(Isa isa);

// The int8 dot product of the integer-activation GEMM (gemm_w8a8; weights of 2/3/4/8 bits per channel or in groups of
// a multiple of 32). VNNI's vpdpbusd (32
// u8 x s8 products summed into int32 lanes, no int16 stage) where the CPU has it: AVX512-VNNI with VL at the Avx512
// level, else AVX-VNNI at Avx2 or above; otherwise the AVX2 kernels (vpmaddubsw / vpmaddwd). Emulated runs the
// VNNI kernels with vpdpbusd emulated exactly in AVX2: it exercises their tiling and zero-point arithmetic on CPUs
// without VNNI (tests), at a fraction of the speed. QUANTEVAL_VNNI=off|emulate|auto (env) sets the mode. Scalar: the
// ISA is capped below AVX2 (QUANTEVAL_ISA=scalar), gemm_w8a8 runs its reference whatever the mode.
enum class A8Dot : int { Avx2 = 0, Emulated = 1, AvxVnni = 2, Avx512Vnni = 3, Scalar = 4 };
enum class A8DotMode : int { Auto = 0, Off = 1, Emulate = 2 };
A8Dot a8_dot();  // after the mode and the ISA cap
void set_a8_dot_mode(A8DotMode mode);  // for tests and benchmarks
const char* a8_dot_name(A8Dot d);

// The AVX-512 kernels (gemm_avx512.cpp: the fp32 GEMM tiles and the 4-/8-bit GEMV): Native at the Avx512 level;
// Emulated runs the same kernel text with its zmm primitives emulated lane by lane in scalar code (exact lane
// semantics, for tests on CPUs without AVX-512; slow), at Avx2 or above; None otherwise (the AVX2 kernels).
// QUANTEVAL_AVX512=emulate (env) or set_zmm_mode(Emulate) asks for the emulation.
enum class Zmm : int { None = 0, Native = 1, Emulated = 2 };
enum class ZmmMode : int { Auto = 0, Emulate = 1 };
Zmm zmm_kernels();  // after the mode and the ISA cap
void set_zmm_mode(ZmmMode mode);  // for tests
const char* zmm_name(Zmm z);

// The exact (fp32-activation) 4-bit and 2-bit GEMV at M = 1 of the AVX2 level (gemm_avx2.cpp; 2-bit: groups of an
// even number of 32-code chunks): Int multiplies the codes by X held as per-group integers (x ~ 2^E n, |n| < 2^25
// (4-bit) or 2^27 (2-bit): exact for every x within a factor 4 of its group's largest) with vpmaddwd, 10 vector
// instructions per 32 codes and no conversions; Fp32 converts the codes to fp32 for FMAs (12 or more instructions, 4
// of them conversions). Both are exact to fp32 rounding; Int is the default. QUANTEVAL_GEMV=fp32 (env) or
// set_gemv_kernel(Fp32) picks the other, for A/B benchmarks and tests. The AVX-512 GEMV (Zmm) comes first.
enum class GemvKernel : int { Int = 0, Fp32 = 1 };
GemvKernel gemv_kernel();
void set_gemv_kernel(GemvKernel k);  // for tests and benchmarks
const char* gemv_kernel_name(GemvKernel k);

}  // namespace quanteval
