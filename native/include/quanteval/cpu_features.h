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

}  // namespace quanteval
