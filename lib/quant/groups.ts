/**
 * Which linears of a Llama decoder layer share an input and which op produces it — the structure AWQ and
 * SmoothQuant fold their per-channel scales through (llm-awq `auto_scale_block`, smoothquant `smooth_lm`):
 *
 *   q, k, v      ← input_layernorm           (AWQ, SmoothQuant)
 *   o            ← v_proj                    (AWQ; only when v's outputs are o's inputs one to one, i.e. no GQA)
 *   gate, up     ← post_attention_layernorm  (AWQ, SmoothQuant)
 *   down         ← up_proj                   (AWQ)
 */

/** Default selection: every decoder linear (embeddings and lm_head stay as they are). */
export const DEFAULT_LINEARS = /^model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)$/;

export interface ScaleGroup {
  /** The producing module: a norm ('model.layers.0.input_layernorm') or a linear. */
  prev: string;
  /** Linears reading prev's output. */
  linears: string[];
  /** Whether SmoothQuant smooths this group (the reference smooths the norm-fed groups only). */
  smooth: boolean;
}

/** Layer index of a decoder linear name, or -1. */
export function layerOf(name: string): number {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : -1;
}

/** The scale groups of layer `l`, restricted to groups whose linears are all selected. */
export function scaleGroups(l: number, selected: ReadonlySet<string>, vOutEqualsOIn: boolean): ScaleGroup[] {
  const p = `model.layers.${l}.`;
  const a = (s: string) => p + "self_attn." + s;
  const m = (s: string) => p + "mlp." + s;
  const groups: ScaleGroup[] = [
    { prev: p + "input_layernorm", linears: [a("q_proj"), a("k_proj"), a("v_proj")], smooth: true },
    { prev: a("v_proj"), linears: [a("o_proj")], smooth: false },
    { prev: p + "post_attention_layernorm", linears: [m("gate_proj"), m("up_proj")], smooth: true },
    { prev: m("up_proj"), linears: [m("down_proj")], smooth: false },
  ];
  return groups.filter(
    (g) => g.linears.every((n) => selected.has(n)) && (g.prev !== a("v_proj") || vOutEqualsOIn),
  );
}
