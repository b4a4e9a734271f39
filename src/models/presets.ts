// Preset table at real size for `chimera plan` (and later `chimera init`). Each entry cites the
// SPEC section its numbers come from; numbers SPEC does not give are marked "not in SPEC" with
// their public source, so they can be checked or replaced.
// Encoders are described per view as towers (all towers run on every view); the bridge is a list
// of FLOP stages per view role (global / local), each with explicit token counts.

export type Scheme =
  | { kind: 'single-resize'; size: number }
  | { kind: 'single-pad'; size: number }
  | { kind: 'sphinx'; grid: number; view: number; input: number }
  | { kind: 'anyres'; tile: number }
  | { kind: 'uhd'; tile: number }
  | { kind: 'slime'; tile: number }
  | { kind: 'monkey'; window: number }
  | { kind: 'fuyu'; patch: number };

export type Tower =
  | { kind: 'vit'; name: string; image: number; patch: number; width: number; depth: number; ffn: number; glu?: boolean; cls: boolean }
  | { kind: 'convnext'; name: string; image: number; dims: number[]; depths: number[] }
  | { kind: 'none' };

/** FLOP stages of a bridge; token counts are per view. */
export type Stage =
  | { op: 'linear'; in: number; out: number; tokens: number }
  | { op: 'attn'; nq: number; nk: number; dq: number; dkv: number; inner: number; dout: number }
  | { op: 'block'; tokens: number; width: number; ffn: number; glu?: boolean; repeat?: number };

export interface LLM {
  name: string; dim: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number;
  /** 'swiglu' = 3 FFN matrices, 'gelu' = 2. */
  ffnKind: 'swiglu' | 'gelu';
  /** MoE: experts, active per token, fraction of layers that are MoE. */
  moe?: { experts: number; topk: number; every: number };
}

export interface Preset {
  name: string;
  spec: string;
  scheme: Scheme;
  towers: Tower[];
  /** LLM positions per view kind (incl. start/end, separators; newlines are added by the planner for anyres/fuyu). */
  tokens: { global: number; local?: number };
  bridge: { global: Stage[]; local?: Stage[] };
  llm: LLM;
  /** Flamingo-style gated cross-attention: LLM layers with xattn and its inner width; images take no positions. */
  xattn?: { layers: number; inner: number; media: number; mediaDim: number };
  note?: string;
}

// ---- encoders
const clipL224: Tower = { kind: 'vit', name: 'CLIP ViT-L/14', image: 224, patch: 14, width: 1024, depth: 24, ffn: 4096, cls: true }; // SPEC §1.4 E2 (257×1024); depth/ffn not in SPEC (OpenAI ViT-L/14)
const clipL336: Tower = { ...clipL224, name: 'CLIP ViT-L/14-336', image: 336 }; // SPEC §3.2 (576×1024 at layer −2; full depth counted)
const evaG224: Tower = { kind: 'vit', name: 'EVA ViT-g/14', image: 224, patch: 14, width: 1408, depth: 39, ffn: 6144, cls: true }; // SPEC §8.1 (39 blocks, 1408); ffn not in SPEC (EVA-g 6144)
const dinoG: Tower = { kind: 'vit', name: 'DINOv2 ViT-g/14', image: 224, patch: 14, width: 1536, depth: 40, ffn: 4096, glu: true, cls: true }; // SPEC §1.4 E3 (257×1536); depth 40 + SwiGLU 4096 not in SPEC (dinov2_vitg14)
const convnextXXL = (image: number): Tower => ({ kind: 'convnext', name: 'ConvNeXt-XXLarge', image, dims: [384, 768, 1536, 3072], depths: [3, 4, 30, 3] }); // SPEC §1.4 E4 (3072×8×8 at 256); dims/depths not in SPEC (open_clip convnext_xxlarge)
const bigG448: Tower = { kind: 'vit', name: 'ViT-bigG/14', image: 448, patch: 14, width: 1664, depth: 48, ffn: 8192, cls: false }; // SPEC §6.2 (1664, 48 layers, mlp ratio 4.9231 → 8192)
const qformer = (nk: number, dkv: number): Stage[] => [
  // SPEC §8.1: BERT-base 12 layers × 768 on 32 queries, cross-attention every 2nd layer (6).
  { op: 'block', tokens: 32, width: 768, ffn: 3072, repeat: 12 },
  ...Array.from({ length: 6 }, (): Stage => ({ op: 'attn', nq: 32, nk, dq: 768, dkv, inner: 768, dout: 768 })),
];
const mlp2 = (vin: number, d: number, t: number): Stage[] => [{ op: 'linear', in: vin, out: d, tokens: t }, { op: 'linear', in: d, out: d, tokens: t }];
/** Qwen-style 1-layer resampler: kv_proj, one MHA, optional output proj (SPEC §17.1). */
const resampler = (nq: number, nk: number, vin: number, e: number, proj: boolean): Stage[] => [
  ...(vin !== e ? [{ op: 'linear', in: vin, out: e, tokens: nk } as Stage] : []),
  { op: 'attn', nq, nk, dq: e, dkv: e, inner: e, dout: e },
  ...(proj ? [{ op: 'linear', in: e, out: e, tokens: nq } as Stage] : []),
];

// ---- LLMs
const llama2_13b: LLM = { name: 'LLaMA-2-13B', dim: 5120, layers: 40, heads: 40, kvHeads: 40, ffn: 13824, vocab: 32000, ffnKind: 'swiglu' }; // SPEC §1.2/§1.7 (ffn from the multiple_of rule); vocab not in SPEC (32000)
const vicuna7b: LLM = { name: 'Vicuna-7B', dim: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, vocab: 32000, ffnKind: 'swiglu' }; // D=4096 SPEC §2.6; layers/ffn/vocab not in SPEC (LLaMA-7B config)
const vicuna13b: LLM = { ...llama2_13b, name: 'Vicuna-13B' }; // D=5120 SPEC §5.3; rest as LLaMA-13B (not in SPEC)
const qwen7b: LLM = { name: 'Qwen-7B', dim: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, vocab: 151936, ffnKind: 'swiglu' }; // D=4096 SPEC §9.1; rest not in SPEC (Qwen-7B config)

const sphinxBase = (name: string, grid: number, input: number): Preset => ({
  name, spec: '§1.2–§1.6, §1.14',
  scheme: { kind: 'sphinx', grid, view: 224, input },
  towers: [clipL224, convnextXXL(256), dinoG, evaG224],
  tokens: { global: 291 }, // 32 Q-Former + 257 visual + start_img + end_img (SPEC §1.4, §1.5)
  bridge: { global: [...qformer(257, 1408), { op: 'linear', in: 768, out: 5120, tokens: 32 }, { op: 'linear', in: 5632, out: 5120, tokens: 257 }] },
  llm: llama2_13b,
});

const P: Preset[] = [
  sphinxBase('sphinx', 1, 224),
  sphinxBase('sphinx-1k', 2, 448),
  sphinxBase('sphinx-2k', 3, 672),
  {
    name: 'sphinx-tiny', spec: '§1.2, §1.6 (llama_ens_light.py)',
    scheme: { kind: 'sphinx', grid: 1, view: 512, input: 512 },
    towers: [convnextXXL(512), dinoG],
    tokens: { global: 259 }, // 257 + start/end
    bridge: { global: [{ op: 'linear', in: 4608, out: 2048, tokens: 257 }] },
    llm: { name: 'TinyLlama-1.1B', dim: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000, ffnKind: 'swiglu' }, // not in SPEC (TinyLlama config)
  },
  {
    name: 'sphinx-moe', spec: '§1.2, §1.6, §1.8 (mixtral_sparse_ens.py)',
    scheme: { kind: 'sphinx', grid: 1, view: 512, input: 512 },
    towers: [clipL224, convnextXXL(512), dinoG, evaG224],
    tokens: { global: 291 },
    bridge: { global: [...qformer(257, 1408), { op: 'linear', in: 768, out: 4096, tokens: 32 }, { op: 'linear', in: 5632, out: 4096, tokens: 257 }] },
    llm: { name: 'Mixtral-8x7B', dim: 4096, layers: 32, heads: 32, kvHeads: 8, ffn: 14336, vocab: 32000, ffnKind: 'swiglu', moe: { experts: 8, topk: 2, every: 1 } }, // 8 experts top-2 SPEC §1.8; dims not in SPEC (Mixtral config)
  },
  {
    name: 'llava', spec: '§3 (SPEC has no LLaVA v1 section: this preset is LLaVA-1.5)',
    scheme: { kind: 'single-pad', size: 336 }, towers: [clipL336], tokens: { global: 576 }, bridge: { global: mlp2(1024, 4096, 576) }, llm: vicuna7b,
  },
  {
    name: 'llava-1.5', spec: '§3.2',
    scheme: { kind: 'single-pad', size: 336 }, towers: [clipL336], tokens: { global: 576 }, bridge: { global: mlp2(1024, 4096, 576) }, llm: vicuna7b,
  },
  {
    name: 'llava-next', spec: '§4.1–§4.3 (llava-v1.6-vicuna-7b)',
    scheme: { kind: 'anyres', tile: 336 }, towers: [clipL336], tokens: { global: 576, local: 576 },
    bridge: { global: mlp2(1024, 4096, 576), local: mlp2(1024, 4096, 576) }, llm: vicuna7b,
  },
  {
    name: 'llava-uhd', spec: '§5.2–§5.6 (paper rules: 64 queries, Vicuna-13B)',
    scheme: { kind: 'uhd', tile: 336 }, towers: [clipL336],
    tokens: { global: 64, local: 65 }, // slice: 64 + ',' or '\n' separator; overview: 64 (SPEC §5.4)
    bridge: { global: resampler(64, 576, 1024, 5120, true), local: resampler(64, 576, 1024, 5120, true) }, llm: vicuna13b,
    note: 'ViT runs on 576 padded patch slots per view (SPEC §5.2 step 6)',
  },
  {
    name: 'slime', spec: '§2.2–§2.6 (Vicuna-7B)',
    scheme: { kind: 'slime', tile: 336 }, towers: [clipL336],
    tokens: { global: 577, local: 144 }, // global 576 + ',' separator; local 144 per tile before text-guided top-p (an upper bound)
    bridge: { global: [...mlp2(1024, 4096, 576), ...resampler(576, 576, 1024, 1024, false), ...mlp2(1024, 4096, 576)],
      local: [...resampler(144, 576, 1024, 1024, false), ...mlp2(1024, 4096, 144)] },
    llm: vicuna7b,
    note: 'local tokens are the upper bound 144 per tile; text-guided selection keeps K ≤ that (SPEC §2.4)',
  },
  {
    name: 'monkey', spec: '§6.2',
    scheme: { kind: 'monkey', window: 448 }, towers: [bigG448], tokens: { global: 256, local: 256 },
    bridge: { global: resampler(256, 1024, 1664, 4096, true), local: resampler(256, 1024, 1664, 4096, true) }, llm: qwen7b,
    note: 'window LoRA FLOPs not counted; <img>/</img> are prompt text tokens, not counted',
  },
  {
    name: 'flamingo', spec: '§7 (OpenFlamingo with CLIP ViT-L/14)',
    scheme: { kind: 'single-resize', size: 224 }, towers: [clipL224], tokens: { global: 0 },
    // Perceiver: 6 layers, 64 latents, kv = [x(257) ; latents], inner 8×64, FFN ×4 (SPEC §7.2)
    bridge: { global: Array.from({ length: 6 }, (): Stage[] => [
      { op: 'attn', nq: 64, nk: 257 + 64, dq: 1024, dkv: 1024, inner: 512, dout: 1024 },
      { op: 'linear', in: 1024, out: 4096, tokens: 64 }, { op: 'linear', in: 4096, out: 1024, tokens: 64 }]).flat() },
    llm: { name: 'MPT-7B', dim: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 16384, vocab: 50432, ffnKind: 'gelu' }, // not in SPEC (OpenFlamingo-9B's MPT-7B)
    xattn: { layers: 8, inner: 512, media: 64, mediaDim: 1024 }, // every 4th of 32 layers: not in SPEC (OpenFlamingo-9B); inner 8×64 SPEC §7.2
    note: 'images take no LLM positions; llm_flops = K/V projections of the 64 latents in the gated xattn layers',
  },
  {
    name: 'blip-2', spec: '§8.1, §8.3',
    scheme: { kind: 'single-resize', size: 224 }, towers: [evaG224], tokens: { global: 32 },
    bridge: { global: [...qformer(257, 1408), { op: 'linear', in: 768, out: 2560, tokens: 32 }] },
    llm: { name: 'OPT-2.7B', dim: 2560, layers: 32, heads: 32, kvHeads: 32, ffn: 10240, vocab: 50272, ffnKind: 'gelu' }, // not in SPEC (OPT-2.7B config)
  },
  {
    name: 'instructblip', spec: '§8.4 (Vicuna-7B)',
    scheme: { kind: 'single-resize', size: 224 }, towers: [evaG224], tokens: { global: 32 },
    bridge: { global: [...qformer(257, 1408), { op: 'linear', in: 768, out: 4096, tokens: 32 }] }, llm: vicuna7b,
    note: 'instruction tokens inside the Q-Former not counted',
  },
  {
    name: 'qwen-vl', spec: '§9.1',
    scheme: { kind: 'single-resize', size: 448 }, towers: [bigG448], tokens: { global: 256 },
    bridge: { global: resampler(256, 1024, 1664, 4096, true) }, llm: qwen7b,
    note: '<img>/</img> are prompt text tokens, not counted',
  },
  {
    name: 'cogvlm', spec: '§10.1 (490 input, README resolution)',
    scheme: { kind: 'single-resize', size: 490 },
    towers: [{ kind: 'vit', name: 'EVA2-CLIP-E', image: 490, patch: 14, width: 1792, depth: 63, ffn: 15360, cls: true }], // width 1792 SPEC §10.1; depth/ffn not in SPEC (EVA2-CLIP-E)
    tokens: { global: 1227 }, // 35×35 = 1225 + boi + eoi
    bridge: { global: [{ op: 'linear', in: 1792, out: 4096, tokens: 1225 }, { op: 'linear', in: 4096, out: 11008, tokens: 1225 }, { op: 'linear', in: 4096, out: 11008, tokens: 1225 }, { op: 'linear', in: 11008, out: 4096, tokens: 1225 }] },
    llm: vicuna7b, note: 'image positions run the visual-expert weights, same size as the LLM weights',
  },
  {
    name: 'moe-llava', spec: '§11.1 (Phi-2 variant)',
    scheme: { kind: 'single-pad', size: 336 }, towers: [clipL336], tokens: { global: 576 }, bridge: { global: mlp2(1024, 2560, 576) },
    llm: { name: 'Phi-2', dim: 2560, layers: 32, heads: 32, kvHeads: 32, ffn: 10240, vocab: 51200, ffnKind: 'gelu', moe: { experts: 4, topk: 2, every: 2 } }, // MoE SPEC §11.1; Phi-2 dims not in SPEC
  },
  {
    name: 'llama-vid', spec: '§12.1 (image at 336, content = all patches)',
    scheme: { kind: 'single-resize', size: 336 },
    towers: [{ ...evaG224, name: 'EVA ViT-g/14', image: 336 }],
    tokens: { global: 577 }, // 1 context + 576 content tokens (compress_type none; SPEC does not fix the image setting)
    bridge: { global: [...qformer(577, 1408), { op: 'linear', in: 768, out: 1408, tokens: 32 }, { op: 'attn', nq: 32, nk: 576, dq: 1408, dkv: 1408, inner: 1408, dout: 1408 }, { op: 'linear', in: 1408, out: 4096, tokens: 1 }, ...mlp2(1408, 4096, 576)] },
    llm: vicuna7b,
  },
  {
    name: 'fuyu', spec: '§13.1',
    scheme: { kind: 'fuyu', patch: 30 }, towers: [{ kind: 'none' }], tokens: { global: 0 },
    bridge: { global: [] }, // Linear 2700 → D per patch, counted by the planner
    llm: { name: 'Persimmon-8B', dim: 4096, layers: 36, heads: 64, kvHeads: 64, ffn: 16384, vocab: 262144, ffnKind: 'gelu' }, // not in SPEC (Persimmon-8B config)
  },
  {
    name: 'internlm-xcomposer', spec: '§14 (64 queries per the paper, unverified)',
    scheme: { kind: 'single-resize', size: 224 }, towers: [evaG224], tokens: { global: 66 }, // 64 + flag_image_start/end
    bridge: { global: [{ op: 'block', tokens: 64, width: 768, ffn: 3072, repeat: 12 }, ...Array.from({ length: 6 }, (): Stage => ({ op: 'attn', nq: 64, nk: 257, dq: 768, dkv: 1408, inner: 768, dout: 768 })), { op: 'linear', in: 768, out: 4096, tokens: 64 }] },
    llm: { name: 'InternLM-7B', dim: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, vocab: 103168, ffnKind: 'swiglu' }, // not in SPEC (InternLM-7B config)
  },
  {
    name: 'lavin', spec: '§15 (7B)',
    scheme: { kind: 'single-resize', size: 224 }, towers: [clipL224], tokens: { global: 6 },
    bridge: { global: [{ op: 'linear', in: 1024, out: 128, tokens: 6 }, { op: 'linear', in: 128, out: 4096, tokens: 6 }] },
    llm: { ...vicuna7b, name: 'LLaMA-7B' }, note: 'adapter FLOPs not counted; "Image: " prefix is text',
  },
  {
    name: 'next-gpt', spec: '§16',
    scheme: { kind: 'single-resize', size: 224 },
    towers: [{ kind: 'vit', name: 'ImageBind-huge', image: 224, patch: 14, width: 1280, depth: 32, ffn: 5120, cls: true }], // not in SPEC (ViT-H/14)
    tokens: { global: 1 }, bridge: { global: [{ op: 'linear', in: 1024, out: 4096, tokens: 1 }] },
    llm: { ...vicuna7b, name: 'Vicuna-7B v0' }, note: '<Img>/</Img> are text tokens, not counted',
  },
  {
    name: 'yi-vl', spec: 'not in SPEC (Yi-VL-6B public config: LLaVA-style, CLIP ViT-H/14 at 448, Yi-6B)',
    scheme: { kind: 'single-pad', size: 448 },
    towers: [{ kind: 'vit', name: 'CLIP ViT-H/14-448', image: 448, patch: 14, width: 1280, depth: 32, ffn: 5120, cls: true }],
    tokens: { global: 1024 }, bridge: { global: mlp2(1280, 4096, 1024) },
    llm: { name: 'Yi-6B', dim: 4096, layers: 32, heads: 32, kvHeads: 4, ffn: 11008, vocab: 64000, ffnKind: 'swiglu' },
  },
];

export const PRESETS: ReadonlyMap<string, Preset> = new Map(P.map((p) => [p.name, p]));

export function getPreset(name: string): Preset {
  const p = PRESETS.get(name);
  if (p === undefined) throw new Error(`unknown preset '${name}' (known: ${[...PRESETS.keys()].join(', ')})`);
  return p;
}
