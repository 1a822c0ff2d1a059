// Model weights: loading by HF tensor name, packed weights, in-place RTN, synthetic random weights, channel scaling
// (SmoothQuant / AWQ folding), calibration capture, memory accounting.
#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>

#include "quanteval/calib.h"
#include "quanteval/half.h"
#include "quanteval/threadpool.h"

namespace quanteval::rt {

const char* const kLinearSuffix[kNumLinears] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                "mlp.down_proj"};

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

float load_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return ((const float*)p)[i];
    case DType::F16: return f16_to_f32(((const uint16_t*)p)[i]);
    case DType::BF16: return bf16_to_f32(((const uint16_t*)p)[i]);
    default: throw std::invalid_argument(std::string("unsupported tensor dtype ") + dtype_name(t));
  }
}

void store_f32(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::F32: ((float*)p)[i] = v; break;
    case DType::F16: ((uint16_t*)p)[i] = f32_to_f16(v); break;
    case DType::BF16: ((uint16_t*)p)[i] = f32_to_bf16(v); break;
    default: throw std::invalid_argument(std::string("unsupported tensor dtype ") + dtype_name(t));
  }
}

std::vector<float> to_f32_vec(const void* data, DType t, int64_t n) {
  std::vector<float> out(n);
  for (int64_t i = 0; i < n; i++) out[i] = load_f32(data, t, i);
  return out;
}

// splitmix64: small, seedable, good enough for synthetic weights.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return (float)((next() >> 40) * (1.0 / 16777216.0)); }  // [0, 1)
};

}  // namespace

// ── Linear ─────────────────────────────────────────────────────────────────────────────────────────────────────

QuantWeight Linear::quant_weight() const {
  QuantWeight w;
  w.fmt = fmt;
  w.N = N;
  w.K = K;
  w.codes = codes.data();
  w.scales = scales.data();
  w.zeros = fmt.symmetric ? nullptr : zeros.data();
  return w;
}

size_t Linear::weight_bytes() const {
  size_t b = bias.size() * 4;
  if (quantized) return b + codes.size() + scales.size() + zeros.size();
  return b + dense.size();
}

std::string Linear::format_name() const {
  if (!quantized) return dtype_name(dtype);
  std::string s = "q" + std::to_string(fmt.bits);
  if (fmt.group_size < K) s += "g" + std::to_string(fmt.group_size);
  if (fmt.symmetric) s += "s";
  return s;
}

void Linear::forward(const float* X, int64_t M, float* Y, std::vector<float>& aq, bool capture_on) const {
  if (!set) throw std::invalid_argument("linear '" + name + "': weights were never set");
  if (capture_on && capture) capture->accumulate(X, M);
  const float* b = has_bias ? bias.data() : nullptr;
  if (act == ActMode::A8 && w8a8_capable()) {
    gemm_w8a8(X, M, quant_weight(), b, Y);
    return;
  }
  const float* xin = X;
  if (act != ActMode::None) {
    aq.resize((size_t)(M * K));
    fake_quant_act_ref(X, M, K, act == ActMode::A8 ? 8 : act_bits, aq.data());
    xin = aq.data();
  }
  if (quantized)
    gemm_q(xin, DType::F32, M, quant_weight(), b, Y);
  else
    gemm_dense(xin, DType::F32, M, dense_weight(), b, Y);
}

void forward_group(Linear* const* ls, int n, const float* X, int64_t M, float* const* Y, std::vector<float>& aq,
                   bool capture_on) {
  bool exact = true, a8 = true;
  for (int i = 0; i < n; i++) {
    const Linear& l = *ls[i];
    if (!l.set || !l.quantized || (capture_on && l.capture)) exact = a8 = false;
    if (l.act != ActMode::None) exact = false;
    if (l.act != ActMode::A8 || !l.w8a8_capable()) a8 = false;
  }
  if (n > 1 && n <= kNumLinears && (exact || a8)) {
    QuantWeight W[kNumLinears];  // per layer per token: no heap allocation
    const float* b[kNumLinears];
    for (int i = 0; i < n; i++) {
      W[i] = ls[i]->quant_weight();
      b[i] = ls[i]->has_bias ? ls[i]->bias.data() : nullptr;
    }
    if (exact) gemm_q_multi(X, DType::F32, M, W, n, b, Y);
    else gemm_w8a8_multi(X, M, W, n, b, Y);
    return;
  }
  for (int i = 0; i < n; i++) ls[i]->forward(X, M, Y[i], aq, capture_on);
}

std::vector<float> Linear::to_f32() const {
  if (!set) throw std::invalid_argument("linear '" + name + "': weights were never set");
  std::vector<float> W((size_t)(N * K));
  if (quantized)
    dequantize_ref(quant_weight(), W.data());
  else
    for (int64_t i = 0; i < N * K; i++) W[i] = load_f32(dense_ptr, dtype, i);
  return W;
}

InputStats::InputStats(int64_t K_, bool hessian_, std::vector<int64_t> rows_)
    : K(K_), hessian(hessian_), sample_rows(std::move(rows_)) {
  if (hessian) H.assign((size_t)(K * K), 0.0);
  abs_sum.assign((size_t)K, 0.0);
  abs_max.assign((size_t)K, 0.f);
  samples.assign(sample_rows.size() * (size_t)K, 0.f);
}

void InputStats::add(const float* X, int64_t M) {
  while (taken < sample_rows.size() && sample_rows[taken] < rows + M) {
    const int64_t r = sample_rows[taken] - rows;  // >= 0: indices increase and the earlier ones were taken
    std::memcpy(samples.data() + taken * K, X + r * K, (size_t)K * 4);
    taken++;
  }
  for (int64_t m = 0; m < M; m++) {
    const float* x = X + m * K;
    for (int64_t k = 0; k < K; k++) {
      float a = std::fabs(x[k]);
      abs_sum[k] += a;
      if (a > abs_max[k]) abs_max[k] = a;
    }
  }
  if (hessian) hessian_accumulate_upper(X, M, K, H.data());
  rows += M;
}

size_t InputStats::bytes() const {
  return H.capacity() * 8 + abs_sum.capacity() * 8 + abs_max.capacity() * 4 + samples.capacity() * 4 +
         sample_rows.capacity() * 8;
}

void Capture::accumulate(const float* X, int64_t M) {
  // Shared statistics already past these rows got them from a sibling linear (same input, earlier in the layer).
  if (in->rows == rows)
    in->add(X, M);
  else if (in->rows < rows + M)
    throw std::logic_error("capture: shared input statistics out of step (linears sharing them saw different inputs)");
  rows += M;
}

// ── Decoder layer ──────────────────────────────────────────────────────────────────────────────────────────────

void decoder_layer(Model& m, int l, Workspace& ws, float* x, int64_t T, int64_t pos0, const KVSink& store, bool capture) {
  const auto& cfg = m.cfg;
  Layer& L = m.layers[l];
  const int64_t D = cfg.hidden, I = cfg.intermediate;
  const float scale = 1.0f / std::sqrt((float)cfg.head_dim);
  rmsnorm(x, L.attn_norm.data(), T, D, cfg.eps, ws.h.data());
  {
    Linear* qkv[3] = {&L.lin[kQ], &L.lin[kK], &L.lin[kV]};
    float* out[3] = {ws.q.data(), ws.k.data(), ws.v.data()};
    forward_group(qkv, 3, ws.h.data(), T, out, ws.aq, capture);
  }
  rope_apply(ws.q.data(), T, cfg.n_heads, cfg.head_dim, cfg.rope.rotary_dim, ws.pos.data(), m.inv_freq.data());
  rope_apply(ws.k.data(), T, cfg.n_kv_heads, cfg.head_dim, cfg.rope.rotary_dim, ws.pos.data(), m.inv_freq.data());
  const KVView view = store(ws.k.data(), ws.v.data());
  attention_prefill(ws.q.data(), T, cfg.n_heads, view, pos0, scale, ws.att.data());
  L.lin[kO].forward(ws.att.data(), T, ws.h.data(), ws.aq, capture);
  add_inplace(x, ws.h.data(), T * D);
  rmsnorm(x, L.ffn_norm.data(), T, D, cfg.eps, ws.h.data());
  {
    Linear* gu[2] = {&L.lin[kGate], &L.lin[kUp]};
    float* out[2] = {ws.g.data(), ws.u.data()};
    forward_group(gu, 2, ws.h.data(), T, out, ws.aq, capture);
  }
  silu_mul(ws.g.data(), ws.u.data(), T * I, ws.g.data());
  L.lin[kDown].forward(ws.g.data(), T, ws.h.data(), ws.aq, capture);
  add_inplace(x, ws.h.data(), T * D);
}

// ── Workspace / caches ─────────────────────────────────────────────────────────────────────────────────────────

size_t Workspace::bytes() const {
  return 4 * (x.capacity() + h.capacity() + q.capacity() + k.capacity() + v.capacity() + att.capacity() +
              g.capacity() + u.capacity() + aq.capacity() + logits.capacity() + pos.capacity());
}

size_t SeqCache::k_bytes() const {
  size_t b = 0;
  for (auto& a : k) b += a.capacity();
  for (auto* vv : {&ks, &kz})
    for (auto& a : *vv) b += a.capacity() * 4;
  return b;
}
size_t SeqCache::v_bytes() const {
  size_t b = 0;
  for (auto& a : v) b += a.capacity();
  for (auto* vv : {&vs, &vz})
    for (auto& a : *vv) b += a.capacity() * 4;
  return b;
}

// ── Model ──────────────────────────────────────────────────────────────────────────────────────────────────────

Model::Model(const ModelConfig& c) : cfg(c) {
  auto pos = [](const char* f, int v) {
    if (v <= 0) throw std::invalid_argument(std::string("model config: ") + f + " must be > 0, got " + std::to_string(v));
  };
  pos("hidden_size", c.hidden); pos("intermediate_size", c.intermediate); pos("num_hidden_layers", c.n_layers);
  pos("num_attention_heads", c.n_heads); pos("num_key_value_heads", c.n_kv_heads); pos("head_dim", c.head_dim);
  pos("vocab_size", c.vocab);
  if (c.n_heads % c.n_kv_heads)
    throw std::invalid_argument("model config: num_attention_heads (" + std::to_string(c.n_heads) +
                                ") must be a multiple of num_key_value_heads (" + std::to_string(c.n_kv_heads) + ")");
  if (c.max_context <= 0) throw std::invalid_argument("model config: max_context must be > 0");
  if (!c.window.empty() && (int64_t)c.window.size() != c.n_layers)
    throw std::invalid_argument("model config: window must have one entry per layer (" + std::to_string(c.n_layers) +
                                "), got " + std::to_string(c.window.size()));
  for (size_t l = 0; l < c.window.size(); l++)
    if (c.window[l] < 0)
      throw std::invalid_argument("model config: window[" + std::to_string(l) + "] must be >= 0 (0 = none), got " +
                                  std::to_string(c.window[l]));
  inv_freq.resize(c.rope.rotary_dim / 2 > 0 ? c.rope.rotary_dim / 2 : 1);
  rope_inv_freq(c.rope, inv_freq.data());
  const int64_t D = c.hidden, Hq = (int64_t)c.n_heads * c.head_dim, Hkv = (int64_t)c.n_kv_heads * c.head_dim,
                I = c.intermediate;
  const int64_t NK[kNumLinears][2] = {{Hq, D}, {Hkv, D}, {Hkv, D}, {D, Hq}, {I, D}, {I, D}, {D, I}};
  layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; l++) {
    for (int j = 0; j < kNumLinears; j++) {
      Linear& L = layers[l].lin[j];
      L.name = "model.layers." + std::to_string(l) + "." + kLinearSuffix[j];
      L.layer = l;
      L.id = j;
      L.N = NK[j][0];
      L.K = NK[j][1];
      L.has_bias = (j <= kV && c.qkv_bias) || (j == kO && c.o_bias) || (j >= kGate && c.mlp_bias);
      by_name_[L.name] = &L;
    }
  }
  lm_head.name = "lm_head";
  lm_head.N = c.vocab;
  lm_head.K = D;
  by_name_["lm_head"] = &lm_head;
}

Linear& Model::linear(const std::string& name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end())
    throw std::invalid_argument("no linear named '" + name + "' (expected e.g. 'model.layers.0.self_attn.q_proj' or 'lm_head')");
  return *it->second;
}

void Model::capture_start(const std::vector<std::string>& names, bool hessian, const std::vector<int64_t>& sample_rows) {
  std::vector<Linear*> ls;
  for (auto& n : names) ls.push_back(&linear(n));
  // (layer, input): 0 = the attention input (q, k, v), 1 = the MLP input (gate, up); o, down and lm_head have
  // inputs of their own.
  std::map<std::pair<int, int>, std::shared_ptr<InputStats>> shared;
  for (Linear* L : ls) {
    const int input = L->id < 0 ? -1 : L->id <= kV ? 0 : (L->id == kGate || L->id == kUp) ? 1 : -1;
    std::shared_ptr<InputStats> st;
    if (input >= 0) {
      auto& slot = shared[{L->layer, input}];
      if (!slot) slot = std::make_shared<InputStats>(L->K, hessian, sample_rows);
      st = slot;
    } else {
      st = std::make_shared<InputStats>(L->K, hessian, sample_rows);
    }
    L->capture = std::make_unique<Capture>();
    L->capture->K = L->K;
    L->capture->in = std::move(st);
  }
}

std::vector<std::string> Model::linear_names() const {
  std::vector<std::string> r;
  for (auto& L : layers)
    for (auto& l : L.lin) r.push_back(l.name);
  r.push_back("lm_head");
  return r;
}

std::vector<float>* Model::norm(const std::string& name, bool** flag) {
  if (name == "model.norm") { *flag = &final_norm_set; return &final_norm; }
  const std::string p = "model.layers.";
  if (name.compare(0, p.size(), p) == 0) {
    size_t dot = name.find('.', p.size());
    if (dot != std::string::npos) {
      int l = std::atoi(name.substr(p.size(), dot - p.size()).c_str());
      std::string rest = name.substr(dot + 1);
      if (l >= 0 && l < cfg.n_layers) {
        if (rest == "input_layernorm") { *flag = &layers[l].attn_norm_set; return &layers[l].attn_norm; }
        if (rest == "post_attention_layernorm") { *flag = &layers[l].ffn_norm_set; return &layers[l].ffn_norm; }
      }
    }
  }
  return nullptr;
}

void Model::set_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data,
                       bool keep_dtype) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw std::invalid_argument("tensor '" + name + "': dtype must be f32, f16 or bf16, got " + dtype_name(dtype));
  auto want = [&](std::vector<int64_t> s) {
    if (s != shape)
      throw std::invalid_argument("tensor '" + name + "': expected shape " + shape_str(s) + ", got " + shape_str(shape));
  };
  const int64_t D = cfg.hidden, V = cfg.vocab;
  auto ends = [&](const std::string& suf) {
    return name.size() > suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  if (name == "model.embed_tokens.weight") {
    want({V, D});
    embed_dtype = dtype;
    embed.assign((const uint8_t*)data, (const uint8_t*)data + V * D * dtype_size(dtype));
    embed_set = true;
    if (cfg.tie_embeddings && !lm_head.quantized) {
      lm_head.dtype = dtype;
      lm_head.dense.clear();
      lm_head.dense_ptr = embed.data();
      lm_head.set = true;
    }
    return;
  }
  if (ends(".weight") || ends(".bias")) {
    const bool is_bias = ends(".bias");
    const std::string mod = name.substr(0, name.size() - (is_bias ? 5 : 7));
    bool* flag = nullptr;
    if (!is_bias) {
      if (auto* nv = norm(mod, &flag)) {
        want({D});
        *nv = to_f32_vec(data, dtype, D);
        *flag = true;
        return;
      }
    }
    auto it = by_name_.find(mod);
    if (it != by_name_.end()) {
      Linear& L = *it->second;
      if (is_bias) {
        if (!L.has_bias)
          throw std::invalid_argument("tensor '" + name + "': this architecture has no bias on '" + mod + "'");
        want({L.N});
        L.bias = to_f32_vec(data, dtype, L.N);
        return;
      }
      want({L.N, L.K});
      const int64_t n = L.N * L.K;
      L.quantized = false;
      L.codes.clear(); L.scales.clear(); L.zeros.clear();
      L.codes.shrink_to_fit(); L.scales.shrink_to_fit(); L.zeros.shrink_to_fit();
      if (keep_dtype || dtype == DType::F32) {
        L.dtype = dtype;
        L.dense.assign((const uint8_t*)data, (const uint8_t*)data + n * dtype_size(dtype));
      } else {
        L.dtype = DType::F32;
        L.dense.resize(n * 4);
        for (int64_t i = 0; i < n; i++) ((float*)L.dense.data())[i] = load_f32(data, dtype, i);
      }
      L.dense_ptr = L.dense.data();
      L.set = true;
      return;
    }
  }
  throw std::invalid_argument("tensor '" + name + "' is not part of this model (expected HF Llama names such as "
                              "'model.layers.0.self_attn.q_proj.weight')");
}

void Model::set_linear_quant(const std::string& name, const QuantFormat& fmt, const uint8_t* codes, size_t codes_bytes,
                             const void* scales, size_t scales_bytes, const uint8_t* zeros, size_t zeros_bytes) {
  Linear& L = linear(name);
  if (!valid_bits(fmt.bits)) throw std::invalid_argument(name + ": bits must be 2, 3, 4, 6 or 8, got " + std::to_string(fmt.bits));
  if (fmt.group_size < 1) throw std::invalid_argument(name + ": group_size must be >= 1");
  if (fmt.scale_dtype != DType::F32 && fmt.scale_dtype != DType::F16 && fmt.scale_dtype != DType::BF16)
    throw std::invalid_argument(name + ": scale dtype must be f32, f16 or bf16");
  const int64_t G = n_groups(L.K, fmt.group_size);
  const size_t want_codes = (size_t)(L.N * row_bytes(L.K, fmt.bits));
  const size_t want_scales = (size_t)(L.N * G) * dtype_size(fmt.scale_dtype);
  if (codes_bytes != want_codes)
    throw std::out_of_range(name + ": codes: expected " + std::to_string(want_codes) + " bytes ([" + std::to_string(L.N) +
                            ", " + std::to_string(row_bytes(L.K, fmt.bits)) + "]), got " + std::to_string(codes_bytes));
  if (scales_bytes != want_scales)
    throw std::out_of_range(name + ": scales: expected " + std::to_string(want_scales) + " bytes, got " +
                            std::to_string(scales_bytes));
  if (!fmt.symmetric && (zeros == nullptr || zeros_bytes != (size_t)(L.N * G)))
    throw std::out_of_range(name + ": zeros: expected " + std::to_string(L.N * G) + " bytes for an asymmetric format, got " +
                            std::to_string(zeros ? zeros_bytes : 0));
  L.fmt = fmt;
  L.codes.assign(codes, codes + codes_bytes);
  L.scales.assign((const uint8_t*)scales, (const uint8_t*)scales + scales_bytes);
  if (fmt.symmetric) L.zeros.clear(); else L.zeros.assign(zeros, zeros + zeros_bytes);
  L.quantized = true;
  L.dense.clear();
  L.dense.shrink_to_fit();
  L.dense_ptr = nullptr;
  L.set = true;
}

void Model::quantize_linear(const std::string& name, const QuantFormat& fmt) {
  Linear& L = linear(name);
  if (!L.set) throw std::invalid_argument(name + ": weights were never set");
  std::vector<float> W = L.to_f32();
  const int64_t G = n_groups(L.K, fmt.group_size);
  std::vector<uint8_t> codes((size_t)(L.N * row_bytes(L.K, fmt.bits)));
  std::vector<uint8_t> scales((size_t)(L.N * G) * dtype_size(fmt.scale_dtype));
  std::vector<uint8_t> zeros(fmt.symmetric ? 0 : (size_t)(L.N * G));
  quantize_rtn_ref(W.data(), L.N, L.K, fmt, codes.data(), scales.data(), fmt.symmetric ? nullptr : zeros.data());
  set_linear_quant(name, fmt, codes.data(), codes.size(), scales.data(), scales.size(), zeros.data(), zeros.size());
}

void Model::randomize(uint64_t seed, DType dense_dtype, const QuantFormat* fmt, bool quantize_lm_head) {
  const int64_t D = cfg.hidden, V = cfg.vocab;
  Rng rng(seed);
  auto fill_dense = [&](auto& buf, DType t, int64_t n, float a, uint64_t s) {
    buf.resize(n * dtype_size(t));
    // Per-thread streams keyed on the block index: the result does not depend on the thread count.
    parallel_for((n + 65535) / 65536, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        Rng r(s ^ (uint64_t)(b * 0x100000001B3ull));
        for (int64_t i = b * 65536; i < std::min(n, (b + 1) * 65536); i++) {
          float u = r.uniform() * 2 - 1;
          if (u == 0) u = 0.5f;  // non-zero weights
          store_f32(buf.data(), t, i, u * a);
        }
      }
    });
  };
  auto fill_linear = [&](Linear& L, bool quant) {
    const float a = 1.0f / std::sqrt((float)L.K);
    uint64_t s = rng.next();
    if (quant && fmt) {
      const int64_t G = n_groups(L.K, fmt->group_size);
      L.fmt = *fmt;
      L.quantized = true;
      L.codes.resize((size_t)(L.N * row_bytes(L.K, fmt->bits)));
      parallel_for(L.N, 64, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; n++) {
          Rng r(s ^ (uint64_t)(n * 0x9E3779B97F4A7C15ull));
          uint8_t* row = L.codes.data() + n * L.stride_bytes();
          for (int64_t i = 0; i < L.stride_bytes(); i++) row[i] = (uint8_t)r.next();
        }
      });
      // Scales chosen so that (q - z) * s spans about ±a.
      const float sc = 2 * a / (float)((1 << fmt->bits) - 1);
      L.scales.resize((size_t)(L.N * G) * dtype_size(fmt->scale_dtype));
      for (int64_t i = 0; i < L.N * G; i++) store_f32(L.scales.data(), fmt->scale_dtype, i, sc * (0.5f + rng.uniform()));
      if (fmt->symmetric) L.zeros.clear();
      else L.zeros.assign((size_t)(L.N * G), (uint8_t)(1 << (fmt->bits - 1)));
      L.dense.clear();
      L.dense.shrink_to_fit();
      L.dense_ptr = nullptr;
    } else {
      L.quantized = false;
      L.dtype = dense_dtype;
      fill_dense(L.dense, dense_dtype, L.N * L.K, a, s);
      L.dense_ptr = L.dense.data();
    }
    if (L.has_bias) {
      L.bias.resize(L.N);
      for (auto& b : L.bias) b = (rng.uniform() - 0.5f) * 0.02f;
    }
    L.set = true;
  };
  embed_dtype = dense_dtype;
  fill_dense(embed, dense_dtype, V * D, 1.0f, rng.next());
  embed_set = true;
  for (auto& layer : layers) {
    layer.attn_norm.assign(D, 1.0f);
    layer.ffn_norm.assign(D, 1.0f);
    for (auto& v : layer.attn_norm) v = 0.8f + 0.4f * rng.uniform();
    for (auto& v : layer.ffn_norm) v = 0.8f + 0.4f * rng.uniform();
    layer.attn_norm_set = layer.ffn_norm_set = true;
    for (auto& L : layer.lin) fill_linear(L, true);
  }
  final_norm.assign(D, 1.0f);
  final_norm_set = true;
  if (cfg.tie_embeddings && !(quantize_lm_head && fmt)) {
    lm_head.quantized = false;
    lm_head.dtype = embed_dtype;
    lm_head.dense.clear();
    lm_head.dense_ptr = embed.data();
    lm_head.set = true;
  } else {
    fill_linear(lm_head, quantize_lm_head);
  }
}

void Model::scale_channels(const std::string& prev, const std::vector<std::string>& next, const float* s, int64_t K) {
  for (int64_t k = 0; k < K; k++)
    if (!(s[k] > 0) || !std::isfinite(s[k]))
      throw std::out_of_range("scale_channels: scales must be finite and > 0, got " + std::to_string(s[k]) +
                              " at channel " + std::to_string(k));
  std::vector<Linear*> nexts;
  for (auto& n : next) {
    Linear& L = linear(n);
    if (L.K != K) throw std::out_of_range("scale_channels: '" + n + "' has " + std::to_string(L.K) +
                                          " input channels, scales have " + std::to_string(K));
    if (!L.set || L.quantized)
      throw std::invalid_argument("scale_channels: '" + n + "' must hold dense weights (scale before quantizing)");
    nexts.push_back(&L);
  }
  bool* flag = nullptr;
  if (auto* nv = norm(prev, &flag)) {
    if ((int64_t)nv->size() != K)
      throw std::out_of_range("scale_channels: '" + prev + "' has " + std::to_string(nv->size()) + " channels, scales have " +
                              std::to_string(K));
    for (int64_t k = 0; k < K; k++) (*nv)[k] /= s[k];
  } else {
    Linear& P = linear(prev);
    if (P.N != K) throw std::out_of_range("scale_channels: '" + prev + "' has " + std::to_string(P.N) +
                                          " output channels, scales have " + std::to_string(K));
    if (!P.set || P.quantized || P.dense_ptr != P.dense.data())
      throw std::invalid_argument("scale_channels: '" + prev + "' must hold its own dense weights");
    for (int64_t n = 0; n < P.N; n++) {
      for (int64_t k = 0; k < P.K; k++)
        store_f32(P.dense.data(), P.dtype, n * P.K + k, load_f32(P.dense.data(), P.dtype, n * P.K + k) / s[n]);
      if (P.has_bias && !P.bias.empty()) P.bias[n] /= s[n];
    }
  }
  for (Linear* L : nexts)
    for (int64_t n = 0; n < L->N; n++)
      for (int64_t k = 0; k < K; k++)
        store_f32(L->dense.data(), L->dtype, n * K + k, load_f32(L->dense.data(), L->dtype, n * K + k) * s[k]);
}

void Model::check_complete() const {
  if (!embed_set) throw std::invalid_argument("model: tensor 'model.embed_tokens.weight' was never set");
  for (int l = 0; l < cfg.n_layers; l++) {
    const Layer& L = layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    if (!L.attn_norm_set) throw std::invalid_argument("model: tensor '" + p + "input_layernorm.weight' was never set");
    if (!L.ffn_norm_set) throw std::invalid_argument("model: tensor '" + p + "post_attention_layernorm.weight' was never set");
    for (auto& lin : L.lin) {
      if (!lin.set) throw std::invalid_argument("model: tensor '" + lin.name + ".weight' was never set");
      if (lin.has_bias && (int64_t)lin.bias.size() != lin.N)
        throw std::invalid_argument("model: tensor '" + lin.name + ".bias' was never set");
    }
  }
  if (!final_norm_set) throw std::invalid_argument("model: tensor 'model.norm.weight' was never set");
  if (!lm_head.set) throw std::invalid_argument("model: tensor 'lm_head.weight' was never set");
}

void Model::release() {
  auto drop = [](auto& v) { std::decay_t<decltype(v)>().swap(v); };
  drop(embed);
  embed_set = false;
  for (auto& L : layers) {
    drop(L.attn_norm); drop(L.ffn_norm);
    L.attn_norm_set = L.ffn_norm_set = false;
    for (auto& l : L.lin) {
      drop(l.dense); drop(l.codes); drop(l.scales); drop(l.zeros); drop(l.bias);
      l.dense_ptr = nullptr; l.set = false; l.quantized = false; l.capture.reset();
    }
  }
  drop(final_norm);
  final_norm_set = false;
  drop(lm_head.dense); drop(lm_head.codes); drop(lm_head.scales); drop(lm_head.zeros);
  lm_head.dense_ptr = nullptr; lm_head.set = false; lm_head.quantized = false;
}

std::map<std::string, size_t> Model::weight_memory() const {
  std::map<std::string, size_t> m;
  m["weights:embedding"] = embed.size();
  size_t norms = final_norm.size() * 4;
  for (auto& L : layers) {
    norms += (L.attn_norm.size() + L.ffn_norm.size()) * 4;
    for (auto& l : L.lin) m["weights:" + l.format_name()] += l.weight_bytes();
  }
  if (lm_head.dense_ptr != embed.data() || lm_head.quantized)
    m["weights:lm_head:" + lm_head.format_name()] += lm_head.weight_bytes();
  m["weights:norms"] = norms;
  size_t cap = 0;
  std::set<const InputStats*> seen;  // shared statistics count once
  for (auto& L : layers)
    for (auto& l : L.lin)
      if (l.capture && seen.insert(l.capture->in.get()).second) cap += l.capture->in->bytes();
  if (cap) m["calibration"] = cap;
  return m;
}

bool Model::any_simulated() const {
  for (auto& L : layers)
    for (auto& l : L.lin)
      if (l.simulated()) return true;
  return lm_head.simulated();
}

size_t Model::decode_weight_bytes() const {
  size_t b = (size_t)cfg.hidden * dtype_size(embed_dtype) + final_norm.size() * 4;
  for (auto& L : layers) {
    b += (L.attn_norm.size() + L.ffn_norm.size()) * 4;
    for (auto& l : L.lin) b += l.weight_bytes();
  }
  b += lm_head.quantized || lm_head.dense_ptr != embed.data() ? lm_head.weight_bytes()
                                                              : (size_t)(lm_head.N * lm_head.K) * dtype_size(lm_head.dtype);
  return b;
}

}  // namespace quanteval::rt
