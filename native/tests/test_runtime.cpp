// Native runtime test (no Node): a small random Llama (GQA, biases, partial rotary) built with Model::randomize.
//  1. prefill of a whole sequence == prefill of a prefix + decode steps (|diff| <= 1e-4 of the logit scale);
//  2. batched decode of sequences at different lengths == each sequence decoded alone;
//  3. prefill results do not depend on which other sequences share the call (bit-exact);
//  4. int8 KV logits stay close to f32 KV logits; packed w8 weights close to dense;
//  4b. K int8 + V int4 caches: prefill + decode == full prefill of the same session type; error vs f32 KV above
//      kv8's; memory reported as kv:k:int8 + kv:v:int4;
//  4c. per-layer sliding windows: prefill + decode == full prefill; layer 0 windowed changes logits only past W;
//  5. bad arguments throw std::invalid_argument / std::out_of_range naming the problem.
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../runtime/model.h"
#include "test_common.h"

using namespace quanteval;
using namespace quanteval::rt;


static float max_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = std::fmax(m, std::fabs(a[i] - b[i]));
  return m;
}

static std::shared_ptr<Model> make_model(const QuantFormat* fmt, std::vector<int64_t> window = {}) {
  ModelConfig c;
  c.window = std::move(window);
  c.hidden = 48; c.intermediate = 100; c.n_layers = 2; c.n_heads = 6; c.n_kv_heads = 2; c.head_dim = 8; c.vocab = 97;
  c.qkv_bias = true; c.max_context = 128;
  c.rope.head_dim = 8; c.rope.rotary_dim = 6; c.rope.theta = 10000;
  auto m = std::make_shared<Model>(c);
  m->randomize(42, DType::F32, fmt, false);
  return m;
}

int main() {
  auto m = make_model(nullptr);
  const int V = m->cfg.vocab;
  std::vector<int32_t> toks = {1, 5, 17, 33, 2, 90, 64, 12, 7, 7, 3, 50};
  const int T = (int)toks.size();

  // 1. full prefill vs prefix + decode.
  Session full(m, KVType::F32, 64);
  int a = full.alloc_seq();
  StepOutputs out;
  out.rows_mode = 2;
  int32_t cnt = T;
  full.prefill(&a, 1, toks.data(), &cnt, out);
  Session inc(m, KVType::F32, 64);
  int b = inc.alloc_seq();
  StepOutputs o2;
  o2.rows_mode = 1;
  int32_t pre = 5;
  inc.prefill(&b, 1, toks.data(), &pre, o2);
  CHECK(max_diff(o2.logits.data(), out.logits.data() + 4 * V, V) <= 1e-4f, "prefix prefill row differs");
  std::vector<float> lg(V);
  float scale = 0;
  for (int i = 0; i < V * T; i++) scale = std::fmax(scale, std::fabs(out.logits[i]));
  CHECK(scale > 0.01f, "logits are all ~0 (%g)", scale);
  for (int t = 5; t < T; t++) {
    inc.decode(&b, 1, &toks[t], lg.data());
    float d = max_diff(lg.data(), out.logits.data() + (size_t)t * V, V);
    CHECK(d <= 1e-4f * std::fmax(1.f, scale), "decode step %d differs from full prefill by %g", t, d);
  }

  // 2. batched decode at different lengths vs alone.
  Session s(m, KVType::F32, 64);
  int ids[3] = {s.alloc_seq(), s.alloc_seq(), s.alloc_seq()};
  int32_t counts[3] = {3, 7, 5};
  std::vector<int32_t> cat;
  for (int i = 0; i < 3; i++) cat.insert(cat.end(), toks.begin(), toks.begin() + counts[i]);
  StepOutputs o3;
  o3.rows_mode = 0;
  s.prefill(ids, 3, cat.data(), counts, o3);
  int32_t next[3] = {9, 10, 11};
  std::vector<float> batched(3 * V);
  s.decode(ids, 3, next, batched.data());
  for (int i = 0; i < 3; i++) {
    Session one(m, KVType::F32, 64);
    int id = one.alloc_seq();
    StepOutputs o;
    o.rows_mode = 0;
    one.prefill(&id, 1, toks.data(), &counts[i], o);
    one.decode(&id, 1, &next[i], lg.data());
    float d = max_diff(lg.data(), batched.data() + (size_t)i * V, V);
    CHECK(d <= 1e-5f * std::fmax(1.f, scale), "batched decode row %d differs by %g", i, d);
  }

  // 3. prefill is batch-independent (bit-exact).
  {
    Session s1(m, KVType::F32, 64), s2(m, KVType::F32, 64);
    int x = s1.alloc_seq();
    int y[2] = {s2.alloc_seq(), s2.alloc_seq()};
    StepOutputs p1, p2;
    p1.rows_mode = p2.rows_mode = 2;
    int32_t c1 = 7, c2[2] = {4, 7};
    s1.prefill(&x, 1, toks.data(), &c1, p1);
    std::vector<int32_t> both(toks.begin(), toks.begin() + 4);
    both.insert(both.end(), toks.begin(), toks.begin() + 7);
    s2.prefill(y, 2, both.data(), c2, p2);
    CHECK(max_diff(p1.logits.data(), p2.logits.data() + 4 * V, 7 * V) == 0.f, "prefill depends on the batch");
  }

  // 4. int8 KV and packed w8 weights stay close.
  {
    Session q(m, KVType::I8, 64);
    int x = q.alloc_seq();
    StepOutputs p;
    p.rows_mode = 2;
    q.prefill(&x, 1, toks.data(), &cnt, p);
    float d = max_diff(p.logits.data(), out.logits.data(), (size_t)T * V);
    CHECK(d > 0 && d < 0.05f * scale, "int8 KV logits differ by %g (scale %g)", d, scale);
    auto mq = make_model(nullptr);
    QuantFormat f;
    f.bits = 8;
    f.group_size = 1 << 20;
    for (auto& n : mq->linear_names())
      if (n != "lm_head") mq->quantize_linear(n, f);
    Session w(mq, KVType::F32, 64);
    int z = w.alloc_seq();
    StepOutputs pw;
    pw.rows_mode = 2;
    w.prefill(&z, 1, toks.data(), &cnt, pw);
    d = max_diff(pw.logits.data(), out.logits.data(), (size_t)T * V);
    CHECK(d > 0 && d < 0.05f * scale, "w8 logits differ by %g (scale %g)", d, scale);
  }

  // 4b. mixed K/V types: incremental == full within the same types; int4 V costs more than int8 V.
  {
    auto run_full = [&](KVType kt, KVType vt) {
      Session q(m, kt, vt, 64);
      int x = q.alloc_seq();
      StepOutputs p;
      p.rows_mode = 2;
      q.prefill(&x, 1, toks.data(), &cnt, p);
      auto mem = q.memory();
      if (kt != vt) CHECK(mem.count("kv:k:int8") && mem.count("kv:v:int4") && !mem.count("kv:int8"), "mixed memory keys");
      return p.logits;
    };
    auto l8 = run_full(KVType::I8, KVType::I8), l84 = run_full(KVType::I8, KVType::I4);
    const float d8 = max_diff(l8.data(), out.logits.data(), (size_t)T * V);
    const float d84 = max_diff(l84.data(), out.logits.data(), (size_t)T * V);
    CHECK(d84 > d8, "k8v4 error %g not above kv8's %g", d84, d8);
    Session q(m, KVType::I8, KVType::I4, 64);
    int x = q.alloc_seq();
    StepOutputs p;
    p.rows_mode = 1;
    q.prefill(&x, 1, toks.data(), &pre, p);
    for (int t = 5; t < T; t++) {
      q.decode(&x, 1, &toks[t], lg.data());
      const float d = max_diff(lg.data(), l84.data() + (size_t)t * V, V);
      CHECK(d <= 1e-4f * std::fmax(1.f, scale), "k8v4 decode step %d differs from its full prefill by %g", t, d);
    }
  }
  // 4c. windows: layer 0 slides with W = 3, layer 1 attends fully.
  {
    const int W = 3;
    auto mw = make_model(nullptr, {W, 0});
    Session fw(mw, KVType::F32, 64);
    int x = fw.alloc_seq();
    StepOutputs p;
    p.rows_mode = 2;
    fw.prefill(&x, 1, toks.data(), &cnt, p);
    for (int t = 0; t < T; t++) {
      const float d = max_diff(p.logits.data() + (size_t)t * V, out.logits.data() + (size_t)t * V, V);
      if (t < W) CHECK(d == 0.f, "window: row %d (< W) differs by %g", t, d);
      else CHECK(d > 1e-4f, "window: row %d (>= W) equals the window-less model", t);
    }
    Session iw(mw, KVType::F32, 64);
    int y = iw.alloc_seq();
    StepOutputs q;
    q.rows_mode = 1;
    iw.prefill(&y, 1, toks.data(), &pre, q);
    for (int t = 5; t < T; t++) {
      iw.decode(&y, 1, &toks[t], lg.data());
      const float d = max_diff(lg.data(), p.logits.data() + (size_t)t * V, V);
      CHECK(d <= 1e-4f * std::fmax(1.f, scale), "window: decode step %d differs from full prefill by %g", t, d);
    }
  }

  // 5. errors.
  auto throws = [](auto fn, const char* what) {
    try {
      fn();
    } catch (const std::invalid_argument&) {
      return true;
    } catch (const std::out_of_range&) {
      return true;
    } catch (...) {
      std::printf("FAIL: %s threw an unexpected exception type\n", what);
      return false;
    }
    std::printf("FAIL: %s did not throw\n", what);
    return false;
  };
  if (!throws([&] { m->linear("model.layers.9.mlp.up_proj"); }, "unknown linear")) g_failures++;
  if (!throws([&] { make_model(nullptr, {4}); }, "window list of the wrong length")) g_failures++;
  if (!throws([&] { make_model(nullptr, {4, -1}); }, "negative window")) g_failures++;
  if (!throws([&] { int32_t bad = V; full.decode(&a, 1, &bad, lg.data()); }, "token outside vocab")) g_failures++;
  if (!throws([&] { int g = 99; full.decode(&g, 1, toks.data(), lg.data()); }, "dead sequence")) g_failures++;
  if (!throws([&] { float s[3] = {1, 1, 1}; m->scale_channels("model.norm", {"lm_head"}, s, 3); }, "scale shape")) g_failures++;
  if (!throws([&] {
        std::vector<int32_t> many(80, 3);
        int32_t n = 80;
        int id = full.alloc_seq();
        StepOutputs o;
        full.prefill(&id, 1, many.data(), &n, o);
      }, "over max_len")) g_failures++;

  if (g_failures) {
    std::printf("%d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("runtime: all checks passed\n");
  return 0;
}
