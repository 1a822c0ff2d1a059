// Layer-wise execution for sequential quantization (model.h, "Layer-wise execution"): the calibration hidden
// states advance one decoder layer per call, so quantizing L layers costs 2L layer passes instead of L²/2.
//
// The layer is decoder_layer (model.h), Session::prefill's own body, over an fp32 KV cache that lives only for the
// call: each sequence runs from position 0 in chunks of kPrefillChunk tokens, so the linears receive the same rows in
// the same order as a capture through Session::prefill, and the statistics are bit-identical (tested in
// test/quant-layerwise.test.ts).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "model.h"

namespace quanteval::rt {

void embed_rows(const Model& m, const int32_t* tokens, int64_t n, float* out) {
  if (!m.embed_set) throw std::invalid_argument("model: tensor 'model.embed_tokens.weight' was never set");
  for (int64_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= m.cfg.vocab)
      throw std::out_of_range("embed: token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                              " is outside the vocabulary [0, " + std::to_string(m.cfg.vocab) + ")");
  embedding(m.embed.data(), m.embed_dtype, m.cfg.vocab, m.cfg.hidden, tokens, n, out);
}

void layer_forward(Model& m, int layer, float* X, const int32_t* counts, int64_t S, bool capture) {
  const auto& cfg = m.cfg;
  if (layer < 0 || layer >= cfg.n_layers)
    throw std::out_of_range("layer_forward: layer must be in [0, " + std::to_string(cfg.n_layers) + "), got " +
                            std::to_string(layer));
  Layer& L = m.layers[layer];
  if (!L.attn_norm_set || !L.ffn_norm_set)
    throw std::invalid_argument("layer_forward: layer " + std::to_string(layer) + " norms were never set");
  for (auto& l : L.lin) {
    if (!l.set) throw std::invalid_argument("linear '" + l.name + "': weights were never set");
    if (capture && l.capture && l.capture->K != l.K) throw std::logic_error("capture shape mismatch");
  }
  int64_t Tmax = 0;
  for (int64_t s = 0; s < S; s++) {
    if (counts[s] < 1) throw std::out_of_range("layer_forward: counts[" + std::to_string(s) + "] must be >= 1");
    Tmax = std::max<int64_t>(Tmax, counts[s]);
  }
  const int64_t D = cfg.hidden, Hq = (int64_t)cfg.n_heads * cfg.head_dim, Hkv = (int64_t)cfg.n_kv_heads * cfg.head_dim,
                I = cfg.intermediate;
  const int64_t C = std::min(kPrefillChunk, Tmax);
  Workspace ws;
  ws.h.resize(C * D); ws.q.resize(C * Hq); ws.att.resize(C * Hq);
  ws.k.resize(C * Hkv); ws.v.resize(C * Hkv); ws.g.resize(C * I); ws.u.resize(C * I); ws.pos.resize(C);
  // fp32 KV of the current sequence: [Tmax, n_kv, head_dim].
  const size_t bpt = (size_t)cfg.n_kv_heads * kv_bytes_per_head(KVType::F32, cfg.head_dim);
  std::vector<uint8_t> kc((size_t)Tmax * bpt), vc((size_t)Tmax * bpt);
  KVView view;
  view.k_type = view.v_type = KVType::F32;
  view.window = cfg.layer_window(layer);  // sliding-window layers see the same keys as in Session::prefill
  view.n_kv_heads = cfg.n_kv_heads;
  view.head_dim = cfg.head_dim;
  view.k = kc.data();
  view.v = vc.data();
  float* x = X;
  for (int64_t s = 0; s < S; s++) {
    const int64_t T = counts[s];
    for (int64_t pos0 = 0; pos0 < T; pos0 += kPrefillChunk) {
      const int64_t Tc = std::min(kPrefillChunk, T - pos0);
      for (int64_t t = 0; t < Tc; t++) ws.pos[t] = (int32_t)(pos0 + t);
      auto store = [&](const float* k, const float* v) {
        kv_store(k, Tc, cfg.n_kv_heads, cfg.head_dim, KVType::F32, kc.data() + pos0 * bpt, nullptr, nullptr);
        kv_store(v, Tc, cfg.n_kv_heads, cfg.head_dim, KVType::F32, vc.data() + pos0 * bpt, nullptr, nullptr);
        return view;
      };
      decoder_layer(m, layer, ws, x, Tc, pos0, store, capture);
      x += Tc * D;
    }
  }
}

}  // namespace quanteval::rt
