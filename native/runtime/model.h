// The native Llama-family runtime: a Model holds the weights resident (each linear dense fp32/fp16/bf16 or packed
// QuantWeight), Sessions hold per-sequence KV caches and run whole decoder steps (prefill of prompts, batched
// decode, scoring) with one call each. All compute is fp32 on the kernels of kernels.h.
//
// Shapes: D = hidden, Hq = n_heads * head_dim, Hkv = n_kv_heads * head_dim, I = intermediate, V = vocab.
// Linear weights are W[N, K] as nn.Linear stores them; Y[M, N] = X[M, K] · W^T + b.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "huge_alloc.h"
#include "quanteval/formats.h"
#include "quanteval/kernels.h"

namespace quanteval::rt {

struct ModelConfig {
  int hidden = 0, intermediate = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, vocab = 0;
  float eps = 1e-5f;
  RopeConfig rope;
  bool tie_embeddings = false, qkv_bias = false, o_bias = false, mlp_bias = false;
  int64_t max_context = 2048;  // longest sequence a session accepts (positions)
  // Sliding attention window per layer [n_layers] (0 = full causal attention), or empty: no layer has one. A layer
  // with window W lets the query at position p see keys p - W < j <= p (KVView::window).
  std::vector<int64_t> window;
  int64_t layer_window(int l) const { return window.empty() ? 0 : window[l]; }
};

// Per-linear activation handling.
//   None: fp32 activations into the weight kernel.
//   A8: real int8 activations through gemm_w8a8 (any packed weight: 2/3/4/8 bits, per channel or grouped).
//   Simulated: fake_quant_act_ref(bits) then the weight kernel (results are marked simulated).
enum class ActMode : int { None = 0, A8 = 1, Simulated = 2 };

// Calibration statistics of one linear input X[M, K], accumulated over every prefill run with capture on. Linears
// that read the same input in the same layer (q/k/v, gate/up) share one InputStats when their captures start
// together (Model::capture_start): the first of them to see a new block of rows accumulates it, the others find it
// done (Capture::accumulate), so the O(M·K²) Hessian and the O(M·K) statistics are computed once per input.
struct InputStats {
  int64_t K = 0, rows = 0;
  bool hessian = true;
  std::vector<double> H;        // [K, K] Σ xᵀx, upper triangle accumulated (mirrored on read); when hessian
  std::vector<double> abs_sum;  // [K] sum |x|
  std::vector<float> abs_max;   // [K] max |x|
  // Row sample (AWQ's searches score candidates on X [n, K] rather than on H): the rows whose global index (rows
  // counted over every captured call, in prefill order) is in sample_rows (strictly increasing) are copied into
  // samples [taken, K]. Memory is n·K·4 bytes whatever the calibration length.
  std::vector<int64_t> sample_rows;
  std::vector<float> samples;
  size_t taken = 0;
  InputStats(int64_t K, bool hessian, std::vector<int64_t> sample_rows);
  // Adds rows [rows, rows + M) of the input.
  void add(const float* X, int64_t M);
  size_t bytes() const;
};

// A linear's view of its input's statistics: how many rows it has seen (its siblings may be ahead).
struct Capture {
  int64_t K = 0, rows = 0;
  std::shared_ptr<InputStats> in;
  void accumulate(const float* X, int64_t M);
};

struct Linear {
  std::string name;
  int layer = -1, id = -1;  // decoder layer and LinearId; -1 for lm_head
  int64_t N = 0, K = 0;
  bool set = false;
  bool quantized = false;
  // Dense storage ([N, K] of dtype) or a borrowed pointer (tied lm_head → embedding table).
  DType dtype = DType::F32;
  WeightBytes dense;
  const void* dense_ptr = nullptr;
  // Packed storage (formats.h).
  QuantFormat fmt;
  WeightBytes codes, scales, zeros;
  bool has_bias = false;
  std::vector<float> bias;  // [N]
  ActMode act = ActMode::None;
  int act_bits = 8;
  std::unique_ptr<Capture> capture;

  int64_t stride_bytes() const { return row_bytes(K, fmt.bits); }
  DenseWeight dense_weight() const { return DenseWeight{dtype, N, K, dense_ptr}; }
  QuantWeight quant_weight() const;
  bool w8a8_capable() const { return quantized; }
  bool simulated() const { return act == ActMode::Simulated || (act == ActMode::A8 && !w8a8_capable()); }
  // Bytes of the weight storage this linear owns (a borrowed tied matrix counts 0).
  size_t weight_bytes() const;
  // "f32", "bf16", "q4g128", "q8", "q4g128s" ...: the memory-accounting category.
  std::string format_name() const;
  // Y[M, N] = act(X)[M, K] · W^T + b; aq is scratch for fake-quantized activations.
  void forward(const float* X, int64_t M, float* Y, std::vector<float>& aq, bool capture_on) const;
  // Dequantized (or converted) fp32 copy of W [N, K].
  std::vector<float> to_f32() const;
};

enum LinearId { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kNumLinears };

// Linears that read the same X [M, K] (a layer's q/k/v, gate/up): Y[i] = ls[i]'s output. Packed weights with the same
// activation mode (exact, or int8 on the integer kernels) run as one kernel pass (gemm_q_multi / gemm_w8a8_multi:
// one barrier instead of n, bit-identical results); anything else, or a capture, runs each forward on its own.
void forward_group(Linear* const* ls, int n, const float* X, int64_t M, float* const* Y, std::vector<float>& aq,
                   bool capture_on);
extern const char* const kLinearSuffix[kNumLinears];

struct Layer {
  std::vector<float> attn_norm, ffn_norm;  // [D]
  bool attn_norm_set = false, ffn_norm_set = false;
  Linear lin[kNumLinears];
};

// Scratch of one forward lane (one thread's worth of a step). Grows on demand.
struct Workspace {
  std::vector<float> x, h, q, k, v, att, g, u, aq, logits;
  std::vector<int32_t> pos;
  size_t bytes() const;
};

class Model {
 public:
  explicit Model(const ModelConfig& cfg);

  const ModelConfig cfg;
  std::vector<uint8_t> embed;  // [V, D] of embed_dtype
  DType embed_dtype = DType::F32;
  bool embed_set = false;
  std::vector<Layer> layers;
  std::vector<float> final_norm;
  bool final_norm_set = false;
  Linear lm_head;
  std::vector<float> inv_freq;  // [rotary_dim / 2]

  // Serializes steps and weight changes (the kernels use the whole thread pool anyway).
  std::mutex mu;

  // Linear by HF module name ("model.layers.3.self_attn.q_proj", "lm_head"); throws naming the name.
  Linear& linear(const std::string& name);
  std::vector<std::string> linear_names() const;
  // Starts (or restarts) calibration capture on the named linears: every later prefill with capture on accumulates
  // their inputs' statistics. Linears among `names` that read the same input of one layer (q/k/v; gate/up) share
  // one InputStats. Every name is resolved before anything changes.
  void capture_start(const std::vector<std::string>& names, bool hessian, const std::vector<int64_t>& sample_rows);
  // Sets a tensor by its HF name (".weight" / ".bias" suffix). data is [shape] of dtype (F32/F16/BF16).
  void set_tensor(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data,
                  bool keep_dtype);
  // Packed weight for a linear: codes [N, row_bytes], scales [N, groups] (fmt.scale_dtype), zeros or null.
  void set_linear_quant(const std::string& name, const QuantFormat& fmt, const uint8_t* codes, size_t codes_bytes,
                        const void* scales, size_t scales_bytes, const uint8_t* zeros, size_t zeros_bytes);
  // RTN-quantizes a dense linear in place (quantize_rtn_ref).
  void quantize_linear(const std::string& name, const QuantFormat& fmt);
  // Seeded random weights for every tensor (synthetic models): norms ~1, dense ~U(-a, a), packed codes uniform.
  void randomize(uint64_t seed, DType dense_dtype, const QuantFormat* fmt, bool quantize_lm_head);
  // Divides the output channels of `prev` (an RMSNorm weight or a linear's rows + bias) by s[K] and multiplies the
  // input channels of each linear in `next` by s (SmoothQuant / AWQ folding; the function is unchanged).
  void scale_channels(const std::string& prev, const std::vector<std::string>& next, const float* s, int64_t K);
  // Throws naming the first tensor never set.
  void check_complete() const;
  // Frees every weight now (the object stays, with every tensor unset); later steps throw "never set".
  void release();
  // Memory by category: "weights:<format>", "weights:norms", "weights:embedding".
  std::map<std::string, size_t> weight_memory() const;
  bool any_simulated() const;
  // Bytes of weights a decode step reads (every linear + one embedding row + norms).
  size_t decode_weight_bytes() const;

 private:
  std::unordered_map<std::string, Linear*> by_name_;
  std::vector<float>* norm(const std::string& name, bool** flag);
};

// One sequence's KV cache, per layer l: k[l] [cap[l], n_kv, bytes_per_head(k_type)], v[l] [cap[l], n_kv,
// bytes_per_head(v_type)], scales/zeros [cap[l], n_kv] (ks/kz when K is quantized, vs/vz when V is). Row r of layer
// l holds position base[l] + r; rows [0, len - base[l]) are live. Full-attention layers keep base 0 and grow with
// the sequence; sliding-window layers drop the positions no later query can see (Session::make_room), so they hold
// at most window - 1 + slack + (tokens of one step) rows whatever the sequence length.
struct SeqCache {
  bool in_use = false;
  int64_t len = 0;
  std::vector<int64_t> base, cap;  // [n_layers]
  std::vector<HugeVec<uint8_t>> k, v;  // on 2 MiB pages from 2 MiB up (huge_alloc.h)
  std::vector<HugeVec<float>> ks, kz, vs, vz;
  size_t bytes() const { return k_bytes() + v_bytes(); }
  size_t k_bytes() const;  // K codes + K scales/zeros
  size_t v_bytes() const;
};

// What a prefill returns.
struct StepOutputs {
  // Which rows get logits: 0 none, 1 the last row of each sequence, 2 every row.
  int rows_mode = 1;
  bool want_logits = true, want_log_softmax = false;
  int topk = 0;
  const int32_t* targets = nullptr;  // [sum T] target per row (−1: none), rows_mode 2
  bool capture = false;
  // Results (rows R = S for mode 1, sum T for mode 2).
  int64_t R = 0;
  std::vector<float> logits, log_softmax, logprobs, topk_logp;
  std::vector<int32_t> argmax, topk_idx;
};

// Wall time of decode steps by category (seconds), when profiling is on: what the kernels take vs the runtime.
struct DecodeProfile {
  bool on = false;
  int64_t steps = 0;
  double total = 0, linear = 0, attention = 0, kv_store = 0, other = 0;
};

class Session {
 public:
  DecodeProfile profile;
  // K and V caches with their own element types (e.g. K int8, V int4); the 3-argument form uses one type for both.
  // window_evict: sliding-window layers drop the positions no later query can see (bounded cache); false keeps every
  // position (the cache grows with the sequence, as full-attention layers do). The 4-argument forms read the
  // environment: QUANTEVAL_WINDOW_EVICT=0 turns eviction off, anything else (or unset) leaves it on.
  Session(std::shared_ptr<Model> model, KVType k_type, KVType v_type, int64_t max_len, bool window_evict);
  Session(std::shared_ptr<Model> model, KVType k_type, KVType v_type, int64_t max_len);
  Session(std::shared_ptr<Model> model, KVType kv_type, int64_t max_len)
      : Session(std::move(model), kv_type, kv_type, max_len) {}
  ~Session();
  std::shared_ptr<Model> model;
  const KVType k_type, v_type;
  const int64_t max_len;
  const bool window_evict;
  // Dead positions a window layer lets accumulate before compacting its cache: max(16, window / 4). Compaction
  // moves window - 1 rows, so its amortized cost is <= 4 (window >= 64) row copies a token per layer, against the
  // window rows every decode step reads.
  static int64_t window_slack(int64_t window) { return std::max<int64_t>(16, window / 4); }

  int alloc_seq();
  void free_seq(int id);
  int64_t seq_len(int id) const;
  // Drops the tail of a sequence (keeps the first `len` tokens). A sliding-window layer that already dropped
  // positions the token at position `len` would attend to ([len - window + 1, len)) cannot go back there: that
  // throws std::out_of_range naming the layer (truncate to 0 and prefill again). can_truncate tells beforehand.
  void truncate(int id, int64_t len);
  // Allocates `count` sequences, each holding a copy of sequence src's cache (prefix caching: a shared context is
  // run once, then each copy continues on its own). out[count] receives the new ids.
  void fork_seq(int src, int count, int32_t* out);
  bool can_truncate(int id, int64_t len) const;
  // Positions [first, len) a layer of a sequence holds (first > 0 once a window layer dropped its dead prefix).
  int64_t first_held(int id, int layer) const;
  // Benchmarks only: grows a sequence to `len` tokens of zero K/V without computing them (decode cost depends on
  // the cache length, not its content).
  void fill_zeros(int id, int64_t len);
  // Appends tokens to sequences and runs them: seqs[S], tokens concatenated, counts[S].
  void prefill(const int32_t* seqs, int64_t S, const int32_t* tokens, const int32_t* counts, StepOutputs& out);
  // One token per sequence, batched: logits [B, V].
  void decode(const int32_t* seqs, int64_t B, const int32_t* tokens, float* logits);
  // "kv:<type>" when K and V share a type, else "kv:k:<type>" and "kv:v:<type>" (types f32, f16, int8, int4, int3, int2);
  // "workspace".
  std::map<std::string, size_t> memory() const;
  // Frees every sequence's cache and the workspaces now.
  void release();

 private:
  SeqCache& seq(int id);
  const SeqCache& seq(int id) const;
  // Before appending T tokens at position c.len: room for them in every layer, after dropping (window layers) the
  // positions the first new query can no longer see once enough of them piled up (window_slack).
  void make_room(SeqCache& c, int64_t T);
  // The first layer that cannot serve a query at position len (it dropped positions that query needs), or -1.
  int blocking_layer(const SeqCache& c, int64_t len) const;
  KVView view(const SeqCache& c, int layer) const;
  // Runs T tokens of one sequence from its current length; leaves final-normed hidden rows in ws.h [T, D].
  void forward_one(Workspace& ws, SeqCache& c, const int32_t* tokens, int64_t T, bool capture);
  void logits_rows(Workspace& ws, const float* hrows, int64_t R, float* out);
  std::vector<SeqCache> seqs_;
  std::vector<std::unique_ptr<Workspace>> lanes_;
  Workspace& lane(size_t i);
};

// ── The decoder layer ─────────────────────────────────────────────────────────────────────────────────────────
// Prefill runs a sequence in chunks of this many tokens; the layer-wise calibration pass uses the same chunks, so its
// linears see exactly the rows (values and order) of a prefill capture.
constexpr int64_t kPrefillChunk = 512;

// Stores the keys and values of a layer's T new rows (k, v [T, n_kv_heads, head_dim] fp32, RoPE applied) in the
// caller's cache and returns the view attention reads (holding positions up to pos0 + T).
using KVSink = std::function<KVView(const float* k, const float* v)>;

// x[i] += y[i], i < n (the residual adds).
inline void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

// x [T, D] (in place) = decoder layer `l` over T rows at positions pos0 .. pos0 + T - 1: RMSNorm, q/k/v, RoPE,
// store, causal attention, o, residual, RMSNorm, gate/up, SiLU·up, down, residual. ws.pos [T] holds the positions
// and ws.h/q/k/v/att/g/u are sized for T rows by the caller. The one body of Session's prefill and the layer-wise
// calibration pass (batched decode has its own, B sequences at different positions).
void decoder_layer(Model& m, int l, Workspace& ws, float* x, int64_t T, int64_t pos0, const KVSink& store, bool capture);

// ── Layer-wise execution (sequential quantization) ──────────────────────────────────────────────────────────────
// GPTQ / AWQ quantize layer after layer, each calibrated on the outputs of the already-quantized layers before it.
// Instead of re-running the whole prefix for every layer (L²/2 layer passes), the calibration hidden states are
// kept and advanced one layer at a time (2 passes per layer). Sequences are concatenated, each from position 0, in
// chunks of the prefill's chunk length with an fp32 KV buffer, so every linear sees exactly the rows (values and
// order) an fp32-cache Session::prefill of the same windows gives it.
// out [n, D] = the embedding rows of tokens[n].
void embed_rows(const Model& m, const int32_t* tokens, int64_t n, float* out);
// X [Σ counts, D] (in place) = decoder layer `layer` applied to each of the S sequences; captures when asked.
void layer_forward(Model& m, int layer, float* X, const int32_t* counts, int64_t S, bool capture);

}  // namespace quanteval::rt
