/**
 * Hugging Face `config.json` → the runtime's model description.
 *
 * Supported architectures: LlamaForCausalLM (Llama 1/2/3, incl. llama3 / linear RoPE scaling), MistralForCausalLM,
 * Qwen2ForCausalLM (q/k/v biases). RoPE parameters are read from transformers ≤4 fields (`rope_theta`,
 * `rope_scaling`) or transformers 5 `rope_parameters`. Anything the runtime cannot execute exactly (another
 * activation, an unknown RoPE type, ...) is rejected with a {@link ConfigError} naming the file, the field, what was
 * expected and what was found.
 *
 * Sliding-window attention, as transformers decides it: Mistral applies `sliding_window` (null = none) on every
 * layer; Qwen2 only when `use_sliding_window` is true, and then on layers i >= `max_window_layers` (or on the layers
 * an explicit `layer_types` marks "sliding_attention"). The result is `layerWindows` (one window per layer, 0 = full
 * attention), which the runtime applies per layer: the query at position p sees keys j with p - W < j <= p.
 */
import { readFileSync } from "node:fs";

export type Architecture = "llama" | "mistral" | "qwen2";

export interface RopeSpec {
  theta: number;
  /** Rotated dims per head (partial rotary: head_dim × partial_rotary_factor). */
  rotaryDim: number;
  scaling: "none" | "llama3" | "linear";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPosition: number;
}

export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** max_position_embeddings: the longest context the model was built for. */
  maxPositions: number;
  rmsNormEps: number;
  rope: RopeSpec;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2, or Llama attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama attention_bias). */
  oBias: boolean;
  /** gate/up/down carry a bias (Llama mlp_bias). */
  mlpBias: boolean;
  /** Sliding-window size when some layer uses one (Mistral v0.1; Qwen2 with use_sliding_window). */
  slidingWindow?: number;
  /** The sliding window of each layer [numLayers] (0 = full causal attention); absent when no layer has one. */
  layerWindows?: number[];
  bosTokenId?: number;
  eosTokenIds: number[];
  /** Storage dtype of the checkpoint, informational ("float32", "float16", "bfloat16"). */
  torchDtype?: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const ARCHS: Record<string, Architecture> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "mistral",
  Qwen2ForCausalLM: "qwen2",
};

type Json = Record<string, unknown>;

/** Parses a config object (`where` names its file in errors). */
export function parseConfig(cfg: Json, where = "config.json"): ModelConfig {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new ConfigError(`${where}: field '${field}': expected ${expected}, got ${JSON.stringify(got)}`);
  };
  const int = (field: string, dflt?: number, min = 1): number => {
    const v = cfg[field] ?? dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) return fail(field, `an integer >= ${min}`, cfg[field]);
    return v;
  };
  const num = (field: string, dflt?: number): number => {
    const v = cfg[field] ?? dflt;
    if (typeof v !== "number" || !Number.isFinite(v)) return fail(field, "a number", cfg[field]);
    return v;
  };
  const archs = cfg.architectures;
  if (!Array.isArray(archs) || archs.length !== 1 || typeof archs[0] !== "string")
    fail("architectures", "a one-element array", archs);
  const architecture = ARCHS[(archs as string[])[0]];
  if (!architecture) fail("architectures", `one of ${Object.keys(ARCHS).join(", ")}`, (archs as string[])[0]);

  const act = cfg.hidden_act ?? "silu";
  if (act !== "silu") fail("hidden_act", "'silu'", act);
  const hiddenSize = int("hidden_size");
  const numHeads = int("num_attention_heads");
  const numKvHeads = int("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads) fail("num_key_value_heads", `a divisor of num_attention_heads=${numHeads}`, numKvHeads);
  const headDim = cfg.head_dim == null ? hiddenSize / numHeads : int("head_dim");
  if (!Number.isInteger(headDim)) fail("hidden_size", `a multiple of num_attention_heads=${numHeads}`, hiddenSize);
  if (cfg.pretraining_tp != null && cfg.pretraining_tp !== 1) fail("pretraining_tp", "1", cfg.pretraining_tp);

  // RoPE: transformers 5 `rope_parameters` or ≤4 `rope_theta` + `rope_scaling`.
  const rp = (cfg.rope_parameters ?? cfg.rope_scaling ?? null) as Json | null;
  if (rp !== null && (typeof rp !== "object" || Array.isArray(rp)))
    fail(cfg.rope_parameters ? "rope_parameters" : "rope_scaling", "an object or null", rp);
  const rpName = cfg.rope_parameters ? "rope_parameters" : "rope_scaling";
  const theta = Number((rp && rp.rope_theta) ?? cfg.rope_theta ?? 10000);
  if (!(theta > 0)) fail("rope_theta", "a positive number", theta);
  const ropeType = String((rp && (rp.rope_type ?? rp.type)) ?? "default");
  const partial = Number((rp && rp.partial_rotary_factor) ?? cfg.partial_rotary_factor ?? 1);
  if (!(partial > 0 && partial <= 1)) fail("partial_rotary_factor", "a number in (0, 1]", partial);
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim % 2) fail("partial_rotary_factor", `a value giving an even rotary dim (head_dim=${headDim})`, partial);
  const rope: RopeSpec = {
    theta, rotaryDim, scaling: "none", factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192,
  };
  if (ropeType === "llama3") {
    const g = (k: string) => {
      const v = rp![k];
      if (typeof v !== "number") fail(`${rpName}.${k}`, "a number", v);
      return v as number;
    };
    Object.assign(rope, {
      scaling: "llama3", factor: g("factor"), lowFreqFactor: g("low_freq_factor"), highFreqFactor: g("high_freq_factor"),
      originalMaxPosition: g("original_max_position_embeddings"),
    });
  } else if (ropeType === "linear") {
    const f = rp!.factor;
    if (typeof f !== "number" || !(f > 0)) fail(`${rpName}.factor`, "a positive number", f);
    Object.assign(rope, { scaling: "linear", factor: f });
  } else if (ropeType !== "default") {
    fail(`${rpName}.rope_type`, "'default', 'llama3' or 'linear'", ropeType);
  }

  const numLayers = int("num_hidden_layers");
  let slidingWindow: number | undefined;
  let layerWindows: number[] | undefined;
  if (architecture === "mistral" && cfg.sliding_window != null) {
    slidingWindow = int("sliding_window");
    layerWindows = Array(numLayers).fill(slidingWindow);
  }
  if (architecture === "qwen2") {
    if (cfg.use_sliding_window != null && typeof cfg.use_sliding_window !== "boolean")
      fail("use_sliding_window", "a boolean", cfg.use_sliding_window);
    // transformers: sliding_window = sliding_window if use_sliding_window else None; layer_types defaults to
    // "sliding_attention" for i >= max_window_layers when sliding_window is set.
    const lt = cfg.layer_types;
    if (lt != null && (!Array.isArray(lt) || lt.length !== numLayers ||
        !lt.every((t) => t === "full_attention" || t === "sliding_attention")))
      fail("layer_types", `an array of ${numLayers} 'full_attention' / 'sliding_attention'`, lt);
    if (cfg.use_sliding_window === true && cfg.sliding_window != null) {
      slidingWindow = int("sliding_window");
      const from = int("max_window_layers", numLayers, 0);
      const sliding = (i: number) => (lt != null ? (lt as string[])[i] === "sliding_attention" : i >= from);
      layerWindows = Array.from({ length: numLayers }, (_, i) => (sliding(i) ? slidingWindow! : 0));
      if (layerWindows.every((w) => w === 0)) { slidingWindow = undefined; layerWindows = undefined; }
    }
  }

  const eos = cfg.eos_token_id;
  const eosTokenIds = eos == null ? [] : Array.isArray(eos) ? (eos as number[]) : [eos as number];
  if (!eosTokenIds.every((e) => Number.isInteger(e))) fail("eos_token_id", "an integer or array of integers", eos);
  const attnBias = cfg.attention_bias === true;
  return {
    architecture,
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: int("vocab_size"),
    maxPositions: int("max_position_embeddings", 2048),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    rope,
    tieWordEmbeddings: cfg.tie_word_embeddings === undefined ? architecture === "qwen2" ? true : false : cfg.tie_word_embeddings === true,
    qkvBias: architecture === "qwen2" || attnBias,
    oBias: architecture !== "qwen2" && attnBias,
    mlpBias: cfg.mlp_bias === true,
    slidingWindow,
    layerWindows,
    bosTokenId: typeof cfg.bos_token_id === "number" ? cfg.bos_token_id : undefined,
    eosTokenIds,
    torchDtype: (cfg.torch_dtype ?? cfg.dtype) as string | undefined,
  };
}

/** Reads and parses `<dir>/config.json`. */
export function readConfig(path: string): ModelConfig {
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`${path}: cannot read (${(e as Error).message})`);
  }
  let j: unknown;
  try {
    j = JSON.parse(raw);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== "object" || j === null || Array.isArray(j)) throw new ConfigError(`${path}: expected a JSON object`);
  return parseConfig(j as Json, path);
}

/** Parameter count of the decoder (embeddings included once when tied). */
export function parameterCount(c: ModelConfig): number {
  const D = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim, I = c.intermediateSize;
  const layer = D * q + 2 * D * kv + q * D + 3 * D * I + 2 * D;
  return c.numLayers * layer + c.vocabSize * D * (c.tieWordEmbeddings ? 1 : 2) + D;
}

/** The names of the seven linears of a decoder layer, HF naming (`model.layers.{i}.` prefix). */
export const LINEAR_SUFFIXES = [
  "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
  "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
] as const;

/** Every tensor a checkpoint of this config must contain, with its shape. */
export function expectedTensors(c: ModelConfig): Map<string, number[]> {
  const D = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim, I = c.intermediateSize;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocabSize, D]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + "input_layernorm.weight", [D]);
    m.set(p + "post_attention_layernorm.weight", [D]);
    m.set(p + "self_attn.q_proj.weight", [q, D]);
    m.set(p + "self_attn.k_proj.weight", [kv, D]);
    m.set(p + "self_attn.v_proj.weight", [kv, D]);
    m.set(p + "self_attn.o_proj.weight", [D, q]);
    if (c.qkvBias) {
      m.set(p + "self_attn.q_proj.bias", [q]);
      m.set(p + "self_attn.k_proj.bias", [kv]);
      m.set(p + "self_attn.v_proj.bias", [kv]);
    }
    if (c.oBias) m.set(p + "self_attn.o_proj.bias", [D]);
    m.set(p + "mlp.gate_proj.weight", [I, D]);
    m.set(p + "mlp.up_proj.weight", [I, D]);
    m.set(p + "mlp.down_proj.weight", [D, I]);
    if (c.mlpBias) {
      m.set(p + "mlp.gate_proj.bias", [I]);
      m.set(p + "mlp.up_proj.bias", [I]);
      m.set(p + "mlp.down_proj.bias", [D]);
    }
  }
  m.set("model.norm.weight", [D]);
  if (!c.tieWordEmbeddings) m.set("lm_head.weight", [c.vocabSize, D]);
  return m;
}
