// Throughput of the vector instructions the int8 GEMM kernels are built from, against the fp32 FMA measured in the
// same run: how many int8 products a cycle the core can issue without VNNI, the ceiling of W8A8 against fp32.
//
//   cmake --build build-cmake --target bench_isa_rates && build-cmake/bench_isa_rates
//
// Each loop is a block of independent instructions (no dependency chain longer than one instruction per block), so
// it measures issue throughput. Figures are ns per instruction and the ratio of products per second to the FMA's
// (8 fp32 multiply-adds per vfmadd231ps). Take the median of a few runs on a quiet machine.
#include <chrono>
#include <cstdio>

#if defined(__x86_64__)
#define R4(x) x x x x
namespace {
double ns_per_iter(void (*f)(long), long n) {
  const auto t0 = std::chrono::steady_clock::now();
  f(n);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / (double)n * 1e9;
}
// 32 instructions an iteration each.
#define EIGHT(op, src) op " " src ",%%ymm0\n " op " " src ",%%ymm1\n " op " " src ",%%ymm2\n " op " " src ",%%ymm3\n " \
  op " " src ",%%ymm4\n " op " " src ",%%ymm5\n " op " " src ",%%ymm6\n " op " " src ",%%ymm7\n"
#define LOOP(name, body) \
  void name(long n) { asm volatile("1:\n" R4(body) "dec %0\n jnz 1b" : "+r"(n)::"memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"); }
LOOP(fma, EIGHT("vfmadd231ps %%ymm15,", "%%ymm14"))
LOOP(madd, EIGHT("vpmaddwd %%ymm15,", "%%ymm14"))
LOOP(maddubs, EIGHT("vpmaddubsw %%ymm15,", "%%ymm14"))
LOOP(addd, EIGHT("vpaddd %%ymm15,", "%%ymm14"))
LOOP(cvt, EIGHT("vcvtdq2ps", "%%ymm14"))
// FMA and vpmaddwd interleaved: ~2 instructions per FMA time if they issue on separate pipes, ~1 if they share them.
#define FM(i, t) "vfmadd231ps %%ymm15,%%ymm14,%%ymm" #i "\n vpmaddwd %%ymm13,%%ymm12,%%ymm" #t "\n"
LOOP(fma_madd, FM(0, 8) FM(1, 9) FM(2, 10) FM(3, 11) FM(4, 8) FM(5, 9) FM(6, 10) FM(7, 11))
// int16 products: vpmaddwd into a temporary, vpaddd into one of 4 accumulators (8 pairs, 16 instructions, twice).
#define MA(a, b, t, acc) "vpmaddwd " a "," b "," t "\n vpaddd " t "," acc "," acc "\n"
#define MA8 MA("%%ymm15", "%%ymm14", "%%ymm4", "%%ymm0") MA("%%ymm15", "%%ymm13", "%%ymm5", "%%ymm1") \
  MA("%%ymm15", "%%ymm12", "%%ymm6", "%%ymm2") MA("%%ymm14", "%%ymm13", "%%ymm7", "%%ymm3")           \
  MA("%%ymm14", "%%ymm12", "%%ymm8", "%%ymm0") MA("%%ymm13", "%%ymm12", "%%ymm9", "%%ymm1")           \
  MA("%%ymm15", "%%ymm15", "%%ymm10", "%%ymm2") MA("%%ymm14", "%%ymm14", "%%ymm11", "%%ymm3")
LOOP(madd_add, MA8 MA8)
// int8 products with llama.cpp's sign trick (no int16 saturation): vpsignb, vpmaddubsw, vpmaddwd(ones), vpaddd.
#define SG(w, t, acc) "vpsignb %%ymm14," w "," t "\n vpmaddubsw " t ",%%ymm11," t "\n vpmaddwd %%ymm15," t "," t \
  "\n vpaddd " t "," acc "," acc "\n"
LOOP(sign4, SG("%%ymm12", "%%ymm4", "%%ymm0") SG("%%ymm13", "%%ymm5", "%%ymm1") SG("%%ymm12", "%%ymm6", "%%ymm2")
                SG("%%ymm13", "%%ymm7", "%%ymm3") SG("%%ymm12", "%%ymm8", "%%ymm0") SG("%%ymm13", "%%ymm9", "%%ymm1")
                    SG("%%ymm12", "%%ymm10", "%%ymm2") SG("%%ymm13", "%%ymm4", "%%ymm3"))
}  // namespace

int main() {
  const long n = 20000000;
  struct Row { const char* name; void (*f)(long); double insns, products; };
  // Instructions and products an iteration (the block four times): fp32 FMA 8 products each; vpmaddwd 16; vpmaddubsw 32 (int16 pair sums that
  // saturate for int8 x int8, so not usable alone); madd+add 16 per pair; sign trick 32 per 4 instructions.
  const Row rows[] = {
      {"vfmadd231ps (baseline)", fma, 32, 32 * 8},  {"vpmaddwd", madd, 32, 32 * 16},
      {"vpmaddubsw", maddubs, 32, 32 * 32},         {"vpaddd", addd, 32, 0},
      {"vcvtdq2ps", cvt, 32, 0},                    {"vfmadd231ps and vpmaddwd interleaved", fma_madd, 64, 0},                    {"vpmaddwd + vpaddd (int16 product)", madd_add, 128, 64 * 16},
      {"sign trick (4 instructions / 32 int8 products)", sign4, 128, 32 * 32},
  };
  for (int round = 0; round < 3; round++) {
    const double base = ns_per_iter(fma, n);
    std::printf("round %d\n", round + 1);
    for (const Row& r : rows) {
      const double t = r.f == fma ? base : ns_per_iter(r.f, n);
      std::printf("  %-48s %7.4f ns/insn  %5.2f insn per FMA time", r.name, t / r.insns, (r.insns / t) / (32 / base));
      if (r.products > 0) std::printf("  products/s vs FMA %.2fx", (r.products / t) / (32 * 8 / base));
      std::printf("\n");
    }
  }
  return 0;
}
#else
int main() {
  std::printf("bench_isa_rates: x86-64 only\n");
  return 0;
}
#endif
