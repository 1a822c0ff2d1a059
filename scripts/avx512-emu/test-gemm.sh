#!/bin/bash
# The native AVX-512 and AVX512-VNNI kernels under the emulator: test_gemm linked statically against the kernel
# library of build-cmake/ (cmake --build build-cmake first), run as `test_gemm avx512 N` and `test_gemm vnni N`
# (N random cases each; ~85 M instructions/s emulated: N = 4 takes ~40 s, vnni 12 ~3 min). Exit status: nonzero when
# either fails. Usage: scripts/avx512-emu/test-gemm.sh [cases]   (BX_BASE as for run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
cases=${1:-4}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g++ -static -O2 -std=c++17 -Inative/include -Inative/tests native/tests/test_gemm.cpp \
  build-cmake/libquanteval_kernels.a -pthread -o "$out/test_gemm"
rc=0
scripts/avx512-emu/run.sh "$out/test_gemm" avx512 "$cases" || rc=1
scripts/avx512-emu/run.sh "$out/test_gemm" vnni "$cases" || rc=1
exit $rc
