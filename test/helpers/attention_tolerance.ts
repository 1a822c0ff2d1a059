// Fast decode attention vs the reference (relative to the output norm): 5e-6 (fp32 accumulation in another order),
// except the AVX2 path's 16-bit fixed-point int4 cases of kernels.h, 1e-4 (seen up to ~4e-5):
//  - int4 keys under MHA (head_dim 32-2048) or GQA in groups of 4k query heads (head_dim 64, 128, 192, 256), and
//    int8 keys under MHA or such GQA (head_dim a multiple of 16 up to 256): the query rounded to 16-bit fixed point
//    (test_attention checks that this rounding is the only difference);
//  - int4 values under MHA, head_dim a multiple of 64: the block's softmax weights rounded to 16-bit fixed point.
export function decodeTolerance(k: string, v: string, nHeads: number, nKv: number, D: number): number {
  const G = nHeads / nKv;
  const k16 = (k === "i4" && ((G === 1 && D >= 32 && D <= 2048) || (G % 4 === 0 && D % 64 === 0 && D <= 256))) ||
    (k === "i8" && (G === 1 || G % 4 === 0) && D % 16 === 0 && D <= 256);
  const v16 = v === "i4" && G === 1 && D % 64 === 0 && D <= 2048;
  return k16 || v16 ? 1e-4 : 5e-6;
}
