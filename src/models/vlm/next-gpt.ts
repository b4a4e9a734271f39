// NExT-GPT, image input and image-signal output (SPEC §16).
// Input: one global embedding per image (ImageBind-huge in the published model; here a CLIP-layout
// ViT's pooled output -> visual_projection -> L2-normalised, as ImageBind's vision head and
// postprocessor do) -> llama_proj Linear(1024 -> D) -> 1 position, written `<Img>` [image] `</Img>`.
// Output: the signal tokens [IMG0..IMG3] are ordinary vocabulary ids; the LLM's last hidden states at
// them plus their input embeddings go through the output projector (src/bridges/text-fc-layer.ts),
// trained to match a conditioning embedding (the diffusion text encoder's caption embedding) with
// the Euclidean alignment loss (nextGptOutputLoss). Stage 3 adds LoRA (r 32, α 32, dropout 0.1) on
// q, k, v, o of every LLM layer through the decoder's linear hook (src/bridges/lora.ts).
// Keys: visual_encoder.{vision_model.*, visual_projection}, llama_proj, gen_text_hidden_fcs.0.*,
// lora.layers.N.{q_proj,k_proj,v_proj,o_proj}.{A,B,scale}.
//
// Dims: V images, Dv ViT width, Di ImageBind width (1024), D LLM width, k signal tokens, Nq, Dc conditioning.

import { isGradEnabled, noGrad } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, tidy, type Tensor } from '../../engine/tensor.ts';
import { initLora, lora, type LoraParams } from '../../bridges/lora.ts';
import { initTextFc, l2AlignLoss, textFc, type TextFcConfig, type TextFcParams } from '../../bridges/text-fc-layer.ts';
import { constInit } from '../../nn/init.ts';
import { initLinear, linear, zeroLinear, type Linear } from '../../nn/linear.ts';
import type { RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import { llamaEmbed, llamaHead, llamaHidden, type LlamaConfig, type LlamaLinearName } from '../llama.ts';
import type { VlmModel, VlmSample } from './model.ts';
import { IGNORE_INDEX, runFrozen, setTrainable } from './trainable.ts';
import { prepareSquare, splitRows, stackPixels } from './blip2.ts';
import type { Detail, EncodeContext, HookStep, PreparedImage, PresetDef, SystemHooks, SystemInfo, VlmSystem } from './system.ts';
import { registerTemplate, type Segment } from './templates.ts';
import { clipConfig, llamaConfig, parseClipTower, tinyLlama, type ClipTower } from './towers.ts';

const LORA_TARGETS: readonly LlamaLinearName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

export interface NextGptConfig {
  vision: ClipTower;
  embedDim: number; // Di
  /** Ids of [IMG0..IMGk-1] in order. */
  signalIds: number[];
  output: TextFcConfig;
  lora: { r: number; alpha: number; dropout: number };
}

type LoraLayer = Record<LlamaLinearName, LoraParams>;

export interface NextGptParams {
  visual_encoder: { vision_model: clip.ClipVisionParams['vision_model']; visual_projection: { weight: Tensor } }; // projection [Di, Dv]
  llama_proj: Linear; // [D, Di]
  gen_text_hidden_fcs: TextFcParams[];
  lora: { layers: LoraLayer[] };
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): NextGptConfig {
  const vision = parseClipTower(r, 'vision_tower');
  const embedDim = r.int('embed_dim', 1024);
  const signalIds = r.intList('image_signal_token_ids');
  if (signalIds.length === 0) throw new Error(`${r.source}: 'image_signal_token_ids' is empty`);
  for (const id of signalIds) if (!(id >= 0 && id < llm.vocabSize)) throw new Error(`${r.source}: signal token id ${id} is outside the vocabulary (${llm.vocabSize})`);
  if (new Set(signalIds).size !== signalIds.length) throw new Error(`${r.source}: 'image_signal_token_ids' repeats an id`);
  const o = r.sub('output_projector');
  const output: TextFcConfig = {
    inDim: llm.hiddenSize, outDim: o.int('out_dim', 768), hidden: o.int('hidden', 512), heads: o.int('heads', 4),
    encoderLayers: o.int('encoder_layers', 4), decoderLayers: o.int('decoder_layers', 4), ffn: o.int('ffn', 2048), numOutputTokens: o.int('num_output_tokens', 77),
  };
  if (output.hidden % output.heads !== 0) throw new Error(`${o.source}: hidden ${output.hidden} is not divisible by heads ${output.heads}`);
  const l = r.sub('lora', {});
  return { vision, embedDim, signalIds, output, lora: { r: l.int('r', 32), alpha: l.num('alpha', 32, 0), dropout: l.num('dropout', 0.1, 0, 0.99) } };
}

/** SPEC §16 stages. s2 and the projector part of s3 train through nextGptOutputLoss, not the LM loss. */
export const NEXT_GPT_STAGES: Record<'s1' | 's2' | 's3', readonly string[]> = {
  s1: ['llama_proj'],
  s2: ['gen_text_hidden_fcs'],
  s3: ['lora.layers.*.*.A', 'lora.layers.*.*.B', 'llama_proj', 'gen_text_hidden_fcs'],
};

function info(): SystemInfo {
  return {
    template: 'next_gpt',
    layout: 'placeholder',
    keepPlaceholder: false,
    // The parameters the language-modelling loss reaches in each stage; use setNextGptStage for the
    // full SPEC sets (the output projector learns only from nextGptOutputLoss).
    stages: { s1: NEXT_GPT_STAGES.s1, s3: ['lora.layers.*.*.A', 'lora.layers.*.*.B', 'llama_proj'] },
    maxImages: 4,
    stopStrings: ['\n###'],
    sampling: { temperature: 0.4, topP: 0.01 },
  };
}

/** Marks SPEC §16's stage (s1, s2, s3) trainable, the output projector included; returns the trainable paths. */
export function setNextGptStage(model: VlmModel, stage: string): string[] {
  const globs = (NEXT_GPT_STAGES as Record<string, readonly string[]>)[stage];
  if (globs === undefined) throw new Error(`next-gpt: no stage '${stage}' (stages: s1, s2, s3)`);
  return setTrainable(model.params, globs);
}

function init(cfg: NextGptConfig, llm: LlamaConfig, rng: Rng | null): NextGptParams {
  const Dv = cfg.vision.cfg.hiddenSize, D = llm.hiddenSize, Dkv = llm.numKvHeads * llm.headDim;
  const dims: Record<LlamaLinearName, [number, number]> = { q_proj: [D, llm.numHeads * llm.headDim], k_proj: [D, Dkv], v_proj: [D, Dkv], o_proj: [llm.numHeads * llm.headDim, D] };
  const scale = cfg.lora.alpha / cfg.lora.r; // PEFT's fixed scaling
  const layer = (): LoraLayer => Object.fromEntries(LORA_TARGETS.map((n) => {
    const p = initLora(dims[n][0], dims[n][1], cfg.lora.r, rng);
    p.scale.dispose();
    return [n, { ...p, scale: constInit([1], scale) }];
  })) as LoraLayer;
  return {
    visual_encoder: { vision_model: clip.init(cfg.vision.cfg, rng).vision_model, visual_projection: { weight: rng ? initLinear(Dv, cfg.embedDim, rng, false).weight : constInit([cfg.embedDim, Dv], 0) } },
    llama_proj: rng ? initLinear(cfg.embedDim, D, rng) : zeroLinear(cfg.embedDim, D),
    gen_text_hidden_fcs: [initTextFc(cfg.output, rng)],
    lora: { layers: Array.from({ length: llm.numLayers }, layer) },
  };
}

function plan(cfg: NextGptConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.vision.cfg.imageSize), positions: 1 };
}

function prepare(cfg: NextGptConfig, image: RgbImage, detail: Detail): PreparedImage {
  return prepareSquare(image, cfg.vision.cfg.imageSize, detail, 1);
}

/** The ImageBind stand-in: normalize(visual_projection(pooled)) [V, Di]. */
export function globalEmbedding(cfg: NextGptConfig, p: NextGptParams['visual_encoder'], px: Tensor): Tensor {
  const pooled = clip.forwardClipVision({ vision_model: p.vision_model }, cfg.vision.cfg, px).poolerOutput; // [V, Dv]
  const e = F.linear(pooled, p.visual_projection.weight); // [V, Di]
  return F.div(e, F.addScalar(F.sqrt(F.sum(F.square(e), -1, true)), 1e-12));
}

function encode(cfg: NextGptConfig, params: NextGptParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  void ctx;
  const e = runFrozen(params.visual_encoder, () => globalEmbedding(cfg, params.visual_encoder, stackPixels(images))); // [V, Di]
  return splitRows(F.unsqueeze(linear(params.llama_proj, e), 1), images.length); // V × [1, D]
}

function hooks(cfg: NextGptConfig, params: NextGptParams, llm: LlamaConfig, step: HookStep): SystemHooks {
  void llm; void step;
  const train = isGradEnabled() && cfg.lora.dropout > 0;
  return {
    linear(layer, name, base, h) {
      const p = params.lora.layers[layer]?.[name];
      if (p === undefined) return null;
      const x = train ? F.dropout(h, cfg.lora.dropout, true) : h;
      return F.add(linear(base, h), lora(p, x));
    },
  };
}

export const system: VlmSystem<NextGptConfig, NextGptParams> = {
  name: 'next-gpt', parseConfig, info, init, plan, prepare, encode,
  hooks: (cfg, params, llm, step) => hooks(cfg, params, llm, step),
};

// ---- output side ---------------------------------------------------------------------------------

/**
 * Start of the signal span in each row: the first position where all k signal ids follow in order.
 * Throws when a row has no complete span, or a signal id appears outside one.
 */
export function findSignalSpan(ids: ArrayLike<number>, signalIds: readonly number[], where = 'sample'): number {
  const k = signalIds.length, set = new Set(signalIds);
  let start = -1;
  for (let i = 0; i < ids.length; i++) {
    if (!set.has(ids[i]!)) continue;
    let ok = i + k <= ids.length;
    for (let j = 0; ok && j < k; j++) ok = ids[i + j] === signalIds[j];
    if (!ok) throw new Error(`${where}: signal token ${ids[i]} at position ${i} is not part of a complete [IMG0..IMG${k - 1}] span of ${k} consecutive tokens`);
    if (start === -1) start = i;
    i += k - 1;
  }
  if (start === -1) throw new Error(`${where}: no [IMG0..IMG${k - 1}] signal span (${k} consecutive ids ${signalIds.join(',')})`);
  return start;
}

export interface OutputLossResult {
  /** Alignment loss (mean Euclidean distance), [] */
  loss: Tensor;
  /** Projected conditioning [B, Nq, Dc]. */
  pred: Tensor;
  /** Next-token cross-entropy when samples carry labels, else null. */
  ce: Tensor | null;
}

/**
 * NExT-GPT's output alignment: for each sample, the last hidden states at its signal span plus the
 * signal tokens' input embeddings -> the output projector -> compared with targets[b] [Nq, Dc].
 */
export function nextGptOutputLoss(model: VlmModel, samples: readonly VlmSample[], targets: readonly Tensor[]): OutputLossResult {
  if (model.system.name !== 'next-gpt') throw new Error(`nextGptOutputLoss: model system is '${model.system.name}', not 'next-gpt'`);
  if (targets.length !== samples.length) throw new Error(`nextGptOutputLoss: ${targets.length} targets for ${samples.length} samples`);
  const cfg = model.config.vision as NextGptConfig, params = model.params as unknown as NextGptParams;
  const lm = model.params.language_model, k = cfg.signalIds.length;
  return tidy(() => {
    const a = model.assemble(samples);
    const hidden = llamaHidden(lm, model.config.text, a.embeds, { hooks: model.hooksFor(a.step) }); // [B, L, D]
    const hs: Tensor[] = [], es: Tensor[] = [];
    a.layouts.forEach((lay, b) => {
      const s = findSignalSpan(lay.ids, cfg.signalIds, `sample ${b}`);
      hs.push(F.slice(F.slice(hidden, 0, b, b + 1), 1, s, s + k)); // [1, k, D]
      es.push(llamaEmbed(lm, model.config.text, fromData(lay.ids.slice(s, s + k), [1, k], 'i32'))); // [1, k, D]
    });
    const pred = textFc(cfg.output, params.gen_text_hidden_fcs[0]!, F.concat(hs, 0), F.concat(es, 0)); // [B, Nq, Dc]
    const want = [cfg.output.numOutputTokens, cfg.output.outDim];
    targets.forEach((t, i) => { if (t.ndim !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1]) throw new Error(`nextGptOutputLoss: target ${i} is ${t.describe()}, expected [${want.join(', ')}]`); });
    const loss = l2AlignLoss(pred, F.stack([...targets], 0));
    let ce: Tensor | null = null;
    if (samples.some((s) => s.labels !== undefined)) {
      const logits = llamaHead(lm, hidden), L = logits.shape[1]!;
      ce = F.crossEntropy(F.slice(logits, 1, 0, L - 1), F.slice(a.labels, 1, 1), { ignoreIndex: IGNORE_INDEX });
    }
    return { loss, pred, ce };
  });
}

/** A fixed pseudo-random conditioning target [Nq, Dc] per caption (a stand-in for a frozen text encoder in tiny training). */
export function captionTarget(cfg: NextGptConfig, caption: string): Tensor {
  let h = 2166136261;
  for (let i = 0; i < caption.length; i++) h = Math.imul(h ^ caption.charCodeAt(i), 16777619) >>> 0;
  const n = cfg.output.numOutputTokens * cfg.output.outDim, d = new Float32Array(n);
  for (let i = 0; i < n; i++) { h = Math.imul(h ^ (h >>> 15), 2246822519) >>> 0; h ^= h >>> 13; d[i] = ((h >>> 8) / 2 ** 24) * 2 - 1; }
  return noGrad(() => fromData(d, [cfg.output.numOutputTokens, cfg.output.outDim]));
}

// ---- template ------------------------------------------------------------------------------------

/** NExT-GPT (Vicuna v0 style): "### Human: <Img>" [image] "</Img> q\n### Assistant: a\n###". */
registerTemplate({
  name: 'next_gpt',
  stopStrings: ['\n###'],
  render(turns, generation) {
    const rest = turns.filter((t) => t.role !== 'system');
    if (rest.length === 0) throw new Error('next_gpt template: no user turn');
    if (generation && rest[rest.length - 1]!.role !== 'user') throw new Error('next_gpt template: the last turn must be the user\'s to generate a reply');
    const out: Segment[] = [{ special: 'bos' }];
    rest.forEach((t, i) => {
      if (t.role !== (i % 2 === 0 ? 'user' : 'assistant')) throw new Error(`next_gpt template: turn ${i + 1} is '${t.role}'; user and assistant turns alternate`);
      if (t.role === 'user') {
        out.push({ text: '### Human: ' });
        for (const p of t.parts) out.push(...('image' in p ? [{ text: '<Img>' }, { image: p.image }, { text: '</Img> ' }] : [{ text: p.text }]));
        out.push({ text: '\n' });
      } else out.push({ text: '### Assistant: ' }, { text: t.parts.map((p) => ('text' in p ? p.text : '')).join('') + '\n###', supervised: true });
    });
    if (generation) out.push({ text: '### Assistant:' });
    return out;
  },
});

// ---- presets -------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    // ImageBind-huge stand-in (ViT-H/14 at 224, 1280 wide, head -> 1024; not in SPEC), Vicuna-7B v0 with
    // the 36 signal tokens appended (vocab 32036; [IMG0..IMG3] = 32000..32003), output projector for SD-1.5 (77×768).
    name: 'next-gpt', system: 'next-gpt',
    real: () => ({ system: 'next-gpt', vision_config: {
      vision_tower: clipConfig({ hidden: 1280, layers: 32, heads: 16, ffn: 5120, image: 224, patch: 14, act: 'gelu' }), embed_dim: 1024,
      image_signal_token_ids: [32000, 32001, 32002, 32003],
      output_projector: { out_dim: 768, hidden: 512, heads: 4, encoder_layers: 4, decoder_layers: 4, ffn: 2048, num_output_tokens: 77 },
      lora: { r: 32, alpha: 32, dropout: 0.1 } },
    text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32036, maxPos: 2048 }) }),
    tiny: () => ({ system: 'next-gpt', vision_config: {
      vision_tower: clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: 56, patch: 14, act: 'gelu' }), embed_dim: 24,
      image_signal_token_ids: [508, 509, 510, 511],
      output_projector: { out_dim: 16, hidden: 32, heads: 4, encoder_layers: 1, decoder_layers: 1, ffn: 64, num_output_tokens: 6 },
      lora: { r: 4, alpha: 4, dropout: 0.1 } },
    text_config: tinyLlama() }),
  },
];
