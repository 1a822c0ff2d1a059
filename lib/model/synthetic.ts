/**
 * Shape presets for synthetic (random-weight) models: the published configs of common checkpoints, so benchmarks
 * run at the real sizes without downloading weights. `resolvePreset` also accepts a path to any config.json.
 */
import { existsSync } from "node:fs";
import { parseConfig, readConfig, type ModelConfig } from "./config.js";

type Json = Record<string, unknown>;

const llama = (o: Json): Json => ({
  architectures: ["LlamaForCausalLM"], hidden_act: "silu", rms_norm_eps: 1e-5, rope_theta: 10000, bos_token_id: 1,
  eos_token_id: 2, vocab_size: 32000, tie_word_embeddings: false, ...o,
});

/** HF config.json fields of each preset (the fields the runtime reads). */
export const PRESETS: Record<string, Json> = {
  "tinyllama-1.1b": llama({
    hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4,
    max_position_embeddings: 2048,
  }),
  "llama-2-7b": llama({
    hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32,
    num_key_value_heads: 32, max_position_embeddings: 4096,
  }),
  "llama-2-13b": llama({
    hidden_size: 5120, intermediate_size: 13824, num_hidden_layers: 40, num_attention_heads: 40,
    num_key_value_heads: 40, max_position_embeddings: 4096,
  }),
  "llama-3-8b": llama({
    hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8,
    max_position_embeddings: 8192, rope_theta: 500000, vocab_size: 128256, bos_token_id: 128000, eos_token_id: 128001,
  }),
  "llama-3.2-1b": llama({
    hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8,
    head_dim: 64, max_position_embeddings: 131072, vocab_size: 128256, tie_word_embeddings: true,
    bos_token_id: 128000, eos_token_id: 128001,
    rope_scaling: { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4,
      original_max_position_embeddings: 8192, rope_theta: 500000 },
    rope_theta: 500000,
  }),
  "mistral-7b": {
    architectures: ["MistralForCausalLM"], hidden_act: "silu", hidden_size: 4096, intermediate_size: 14336,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 32768,
    rms_norm_eps: 1e-5, rope_theta: 1000000, vocab_size: 32768, bos_token_id: 1, eos_token_id: 2,
    tie_word_embeddings: false,
  },
  // Mistral 7B v0.1: sliding-window attention (4096) on every layer.
  "mistral-7b-v0.1": {
    architectures: ["MistralForCausalLM"], hidden_act: "silu", hidden_size: 4096, intermediate_size: 14336,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 32768,
    rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: 32000, bos_token_id: 1, eos_token_id: 2,
    tie_word_embeddings: false, sliding_window: 4096,
  },
  // A tiny Mistral with a 4-token sliding window, small enough for a float64 reference forward in tests.
  "tiny-mistral-sw4": {
    architectures: ["MistralForCausalLM"], hidden_act: "silu", hidden_size: 32, intermediate_size: 48,
    num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, max_position_embeddings: 64,
    rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: 64, bos_token_id: 1, eos_token_id: 2,
    tie_word_embeddings: false, sliding_window: 4,
  },
  "qwen2-0.5b": {
    architectures: ["Qwen2ForCausalLM"], hidden_act: "silu", hidden_size: 896, intermediate_size: 4864,
    num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768,
    rms_norm_eps: 1e-6, rope_theta: 1000000, vocab_size: 151936, tie_word_embeddings: true,
    bos_token_id: 151643, eos_token_id: 151643,
  },
  "qwen2-1.5b": {
    architectures: ["Qwen2ForCausalLM"], hidden_act: "silu", hidden_size: 1536, intermediate_size: 8960,
    num_hidden_layers: 28, num_attention_heads: 12, num_key_value_heads: 2, max_position_embeddings: 32768,
    rms_norm_eps: 1e-6, rope_theta: 1000000, vocab_size: 151936, tie_word_embeddings: true,
    bos_token_id: 151643, eos_token_id: 151643,
  },
  "stories260k": llama({
    hidden_size: 64, intermediate_size: 172, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 4,
    head_dim: 8, vocab_size: 512, max_position_embeddings: 512, tie_word_embeddings: true,
  }),
};

/** A preset name (case-insensitive) or a config.json path → its config. */
export function resolvePreset(spec: string): { name: string; config: ModelConfig } {
  const key = spec.toLowerCase();
  if (PRESETS[key]) return { name: key, config: parseConfig(PRESETS[key], `preset '${key}'`) };
  if (existsSync(spec)) return { name: spec, config: readConfig(spec) };
  throw new RangeError(
    `synthetic model '${spec}': expected a preset (${Object.keys(PRESETS).join(", ")}) or a path to a config.json`,
  );
}
