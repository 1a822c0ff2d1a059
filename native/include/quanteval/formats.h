// quanteval packed formats: the one place where bit layouts are defined.
//
// Every kernel (reference, CPU SIMD, CUDA) and every file writer reads these definitions; nothing else may
// assume a layout. Shapes are written [rows, cols]; a weight matrix is W[N, K] (N output channels, K inputs),
// as nn.Linear stores it, so Y[M, N] = X[M, K] · W^T.
//
// ── Weights ──────────────────────────────────────────────────────────────────────────────────────────────────
// A quantized weight row of K values is split into *groups* of `group_size` consecutive inputs (per output
// channel: group_size = K). The last group of a row is short when K % group_size != 0 (stories260K has
// K = 172). Each group g of row n has a scale s[n, g] and an integer zero point z[n, g]; the dequantized value is
//     w = (q - z) * s,   q an unsigned code in [0, 2^bits - 1].
// Asymmetric (min-max) formats store z per group as uint8. Symmetric formats store no zero points: z is the
// constant 2^(bits-1), so the signed code q - z lies in [-2^(bits-1), 2^(bits-1) - 1].
// These are exactly the semantics of AWQ/qllm-eval `pseudo_quantize_tensor` (see quantize_rtn_ref):
//     asym: s = max(max - min, 1e-5) / (2^b - 1);  z = clamp(-round(min / s), 0, 2^b - 1)
//     sym:  s = max(absmax, 1e-5) / (2^(b-1) - 1);   z = 2^(b-1)
//     q = clamp(round(w / s) + z, 0, 2^b - 1)        (round half to even, as torch.round)
//
// Codes are packed row by row in *chunks* of 32 consecutive values; a row is padded with code 0 up to a multiple
// of 32 values (kernels never use padded codes: they stop at K). Row stride in bytes = chunks_per_row * chunk
// bytes. Inside one chunk of 32 codes c[0..31]:
//   8-bit: 32 bytes,  byte j       = c[j]
//   4-bit: 16 bytes,  byte j       = c[j] | c[j + 16] << 4                      (j < 16)
//   2-bit:  8 bytes,  byte j       = c[j] | c[j+8] << 2 | c[j+16] << 4 | c[j+24] << 6   (j < 8)
//   3-bit: 12 bytes,  bytes 0..7   = the low two bits of every code, laid out as the 2-bit chunk;
//                     bytes 8..11  = a little-endian uint32 whose bit j is bit 2 of c[j]
//   6-bit: 24 bytes,  bytes 0..15  = the low four bits of every code, laid out as the 4-bit chunk;
//                     bytes 16..23 = the high two bits (c[j] >> 4) of every code, laid out as the 2-bit chunk
//                     (so c[j] = lo4[j] | hi2[j] << 4 and the SIMD unpackers of 4 and 2 bits serve unchanged)
// (One AND and one shift turn a 4-bit chunk into two in-order 16-byte vectors; the 2- and 3-bit layouts follow
// ggml's q2_K/q3_K idea for the same reason.)
//
// Scales are [N, n_groups] in fp32, fp16 or bf16; zero points are [N, n_groups] uint8 (absent when symmetric).
//
// ── KV cache ─────────────────────────────────────────────────────────────────────────────────────────────────
// K (after RoPE) and V are quantized per token per head (one group = head_dim values), asymmetric, with an fp32
// scale and an fp32 (integer-valued) zero point per [token, kv_head]: x = (q - z) * s.
//   int8: head_dim bytes, byte d = code of element d.
//   int4: head_dim / 2 bytes (head_dim even), byte j = code[2j] | code[2j + 1] << 4.
//   int2: ceil(head_dim / 4) bytes, byte j = code[4j] | code[4j+1] << 2 | code[4j+2] << 4 | code[4j+3] << 6
//         (any head_dim; a short last byte has zero padding bits).
//   int3: two bit planes, ceil(head_dim / 4) + ceil(head_dim / 8) bytes: first the low 2 bits of every code laid
//         out exactly as int2, then the high bit of code d at bit d % 8 of plane byte d / 8. That is 3 bits a value
//         (3 · head_dim / 8 bytes when head_dim % 8 == 0, e.g. 48 bytes for head_dim 128) plus the fp32 scale and
//         zero; any head_dim, padding bits zero.
// fp32 / fp16 caches store the values themselves. Cache tensors are [tokens, kv_heads, head_dim] per sequence
// (token-major), scales and zeros [tokens, kv_heads].
#pragma once

#include <cstddef>
#include <cstdint>

namespace quanteval {

// Element types of dense tensors and scales. Values are part of the N-API contract (lib/native.ts mirrors them).
enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, I8 = 3, U8 = 4, I32 = 5 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::I8: case DType::U8: return 1;
  }
  return 0;
}
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32"; case DType::F16: return "f16"; case DType::BF16: return "bf16";
    case DType::I8: return "i8"; case DType::U8: return "u8"; case DType::I32: return "i32";
  }
  return "?";
}

constexpr int kChunk = 32;  // codes per packed chunk

// Bytes of one packed chunk of 32 codes, by bit width.
constexpr size_t chunk_bytes(int bits) {
  return bits == 8 ? 32 : bits == 6 ? 24 : bits == 4 ? 16 : bits == 3 ? 12 : bits == 2 ? 8 : 0;
}
static_assert(chunk_bytes(8) * 8 == kChunk * 8, "8-bit chunk is 32 bytes");
static_assert(chunk_bytes(6) * 8 == kChunk * 6, "6-bit chunk is 24 bytes (16 low-nibble bytes + 8 high-bit bytes)");
static_assert(chunk_bytes(6) == chunk_bytes(4) + chunk_bytes(2), "6-bit chunk = a 4-bit chunk then a 2-bit chunk");
static_assert(chunk_bytes(4) * 8 == kChunk * 4, "4-bit chunk is 16 bytes");
static_assert(chunk_bytes(3) * 8 == kChunk * 3, "3-bit chunk is 12 bytes (8 low-bit bytes + 4 high-bit bytes)");
static_assert(chunk_bytes(2) * 8 == kChunk * 2, "2-bit chunk is 8 bytes");

constexpr bool valid_bits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 6 || bits == 8; }
// The list valid_bits accepts, for error messages.
constexpr const char* kValidBitsText = "2, 3, 4, 6 or 8";

// Describes a packed weight matrix W[N, K]. Pointers are borrowed (owned by JS buffers or the runtime).
struct QuantFormat {
  int bits = 4;           // 2, 3, 4, 6 or 8
  int group_size = 128;   // >= 1; per output channel is group_size = K
  bool symmetric = false; // true: no zero points, z = 2^(bits-1)
  DType scale_dtype = DType::F32;  // F32, F16 or BF16
};

inline int64_t n_groups(int64_t K, int group_size) { return (K + group_size - 1) / group_size; }
inline int64_t chunks_per_row(int64_t K) { return (K + kChunk - 1) / kChunk; }
inline int64_t row_bytes(int64_t K, int bits) { return chunks_per_row(K) * (int64_t)chunk_bytes(bits); }

struct QuantWeight {
  QuantFormat fmt;
  int64_t N = 0, K = 0;
  const uint8_t* codes = nullptr;   // [N, row_bytes(K, bits)]
  const void* scales = nullptr;     // [N, n_groups] of fmt.scale_dtype
  const uint8_t* zeros = nullptr;   // [N, n_groups] uint8, nullptr when symmetric
  int64_t groups() const { return n_groups(K, fmt.group_size); }
  int64_t stride() const { return row_bytes(K, fmt.bits); }
};

// Read code k (0 <= k < K) of a packed row. The scalar definition of the layout above; the reference kernels use
// it and the SIMD/CUDA kernels are tested against them.
inline int get_code(const uint8_t* row, int64_t k, int bits) {
  const uint8_t* c = row + (k / kChunk) * (int64_t)chunk_bytes(bits);
  int j = (int)(k % kChunk);
  switch (bits) {
    case 8: return c[j];
    case 4: return j < 16 ? (c[j] & 0xF) : (c[j - 16] >> 4);
    case 2: return (c[j & 7] >> (2 * (j >> 3))) & 3;
    case 3: {
      int lo = (c[j & 7] >> (2 * (j >> 3))) & 3;
      uint32_t hi = (uint32_t)c[8] | (uint32_t)c[9] << 8 | (uint32_t)c[10] << 16 | (uint32_t)c[11] << 24;
      return lo | (int)((hi >> j) & 1) << 2;
    }
    case 6: {
      int lo = j < 16 ? (c[j] & 0xF) : (c[j - 16] >> 4);
      int hi = (c[16 + (j & 7)] >> (2 * (j >> 3))) & 3;
      return lo | hi << 4;
    }
  }
  return 0;
}
// Write code k of a packed row (row bytes must be zeroed first).
inline void put_code(uint8_t* row, int64_t k, int bits, int q) {
  uint8_t* c = row + (k / kChunk) * (int64_t)chunk_bytes(bits);
  int j = (int)(k % kChunk);
  switch (bits) {
    case 8: c[j] = (uint8_t)q; break;
    case 4: if (j < 16) c[j] |= (uint8_t)(q & 0xF); else c[j - 16] |= (uint8_t)((q & 0xF) << 4); break;
    case 2: c[j & 7] |= (uint8_t)((q & 3) << (2 * (j >> 3))); break;
    case 3: c[j & 7] |= (uint8_t)((q & 3) << (2 * (j >> 3))); if (q & 4) c[8 + j / 8] |= (uint8_t)(1u << (j % 8)); break;
    case 6:
      if (j < 16) c[j] |= (uint8_t)(q & 0xF); else c[j - 16] |= (uint8_t)((q & 0xF) << 4);
      c[16 + (j & 7)] |= (uint8_t)(((q >> 4) & 3) << (2 * (j >> 3)));
      break;
  }
}

// KV-cache element formats. Values are part of the N-API contract.
enum class KVType : int32_t { F32 = 0, F16 = 1, I8 = 2, I4 = 3, I3 = 4, I2 = 5 };
// Bits of one code of a quantized KV type (0 for fp32 / fp16).
constexpr int kv_bits(KVType t) {
  return t == KVType::I8 ? 8 : t == KVType::I4 ? 4 : t == KVType::I3 ? 3 : t == KVType::I2 ? 2 : 0;
}
constexpr size_t kv_bytes_per_head(KVType t, int head_dim) {
  switch (t) {
    case KVType::F32: return (size_t)head_dim * 4;
    case KVType::F16: return (size_t)head_dim * 2;
    case KVType::I8: return (size_t)head_dim;
    case KVType::I4: return (size_t)head_dim / 2;
    case KVType::I3: return (size_t)(head_dim + 3) / 4 + (size_t)(head_dim + 7) / 8;  // 2-bit plane + 1-bit plane
    case KVType::I2: return (size_t)(head_dim + 3) / 4;
  }
  return 0;
}
static_assert(kv_bytes_per_head(KVType::I3, 128) == 48 && kv_bytes_per_head(KVType::I3, 64) == 24 &&
                  kv_bytes_per_head(KVType::I3, 8) == 3, "int3 KV: 3 bits a value when head_dim % 8 == 0");
static_assert(kv_bytes_per_head(KVType::I3, 7) == 3 && kv_bytes_per_head(KVType::I3, 9) == 5,
              "int3 KV: ceil(D/4) + ceil(D/8) bytes");
static_assert(kv_bytes_per_head(KVType::I2, 128) == 32 && kv_bytes_per_head(KVType::I2, 7) == 2,
              "int2 KV: ceil(D/4) bytes");
constexpr bool kv_quantized(KVType t) { return kv_bits(t) != 0; }

}  // namespace quanteval
