// BLIP-2 and InstructBLIP (SPEC §8): a frozen ViT (EVA ViT-g in the published models; Chimera's
// CLIP-layout ViT stands in, its post_layernorm playing ln_vision) -> the Q-Former on 32 learned
// queries -> language_projection Linear(768 -> D): 32 soft-prompt positions at the image's
// placeholder. InstructBLIP (qformer_text_input) also feeds the instruction tokens to the
// Q-Former's self-attention (cross-attention stays query-only; only the query outputs are
// projected). Stage 2: Q-Former + projection train, ViT and LLM frozen.
// Keys follow HF Blip2ForConditionalGeneration / InstructBlip: vision_model.*, query_tokens,
// qformer.* (+ qformer.embeddings.{word_embeddings,position_embeddings} for the instruction; the
// input LayerNorm stays at qformer.layernorm), language_projection.
//
// Also here: the stage-1 objectives (SPEC §8.2: ITC, ITM, ITG) over a Q-Former with a text side.
//
// Dims: V images, S = 1 + G² ViT tokens, E ViT width, Q queries, Dq Q-Former width, Tt instruction
// tokens, D LLM width, B batch, T text length, Ep contrastive width (256), Vt text vocabulary.

import { noGrad } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, type Tensor } from '../../engine/tensor.ts';
import { constInit } from '../../nn/init.ts';
import { initLinear, linear, zeroLinear, type Linear } from '../../nn/linear.ts';
import { activation, layerNormParams, normalOrZero, type LayerNormParams } from '../../nn/vit.ts';
import { CLIP_MEAN, CLIP_STD, normalize, resizeBicubic, type RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as qf from '../blip2-qformer.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { registerTemplate, type Segment } from './templates.ts';
import { clipConfig, initQFormerTower, llamaConfig, parseQFormerTower, qformerConfig, tinyLlama, type QFormerTower } from './towers.ts';

// ---- shared helpers for single-view systems (also used by qwen-vl, llama-vid, xcomposer, next-gpt) ----

/** Bicubic resize to S×S, CLIP mean/std: a one-view PreparedImage with pixels[key] [1, 3, S, S]. */
export function prepareSquare(image: RgbImage, S: number, detail: Detail, positions: number, key = 'vit'): PreparedImage {
  const chw = normalize(resizeBicubic(image, S, S), CLIP_MEAN, CLIP_STD);
  return { size: [image.width, image.height], detail, views: singleResize(image.width, image.height, S), positions, pixels: { [key]: fromData(chw, [1, 3, S, S]) } };
}

/** pixels[key] of every image joined on the batch axis: [V, 3, S, S]. */
export function stackPixels(images: readonly PreparedImage[], key = 'vit'): Tensor {
  const xs = images.map((im, i) => {
    const t = im.pixels[key];
    if (t === undefined) throw new Error(`image ${i} has no '${key}' pixels (prepared by another system?)`);
    return t;
  });
  return xs.length === 1 ? xs[0]! : F.concat(xs, 0);
}

/** Per-image rows of a [V, N, D] batch: V tensors [N, D]. */
export function splitRows(x: Tensor, n: number): Tensor[] {
  return Array.from({ length: n }, (_, i) => F.squeeze(F.slice(x, 0, i, i + 1), 0));
}

/** The instruction as i32 [1, Tt] (first `max` ids), or null when there is none. */
export function instructionIds(im: PreparedImage, max: number): Tensor | null {
  const ids = im.instruction ?? [];
  if (ids.length === 0) return null;
  return fromData(Int32Array.from(ids.slice(0, max)), [1, Math.min(ids.length, max)], 'i32');
}

/**
 * Globs of the Q-Former leaves that get gradients from its query outputs: everything except the
 * text feed-forwards of the last layer (text outputs are discarded) and, without text input, all text FFNs.
 */
export function qformerTrainGlobs(prefix: string, cfg: qf.Blip2QFormerConfig, withText: boolean): string[] {
  if (!cfg.useQformerTextInput) return [prefix];
  const out = [`${prefix}.layernorm`];
  if (withText) out.push(`${prefix}.embeddings`);
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const l = `${prefix}.encoder.layer.${i}`;
    if (withText && i < cfg.numHiddenLayers - 1) { out.push(l); continue; }
    out.push(`${l}.attention`, `${l}.intermediate_query`, `${l}.output_query`);
    if (i % cfg.crossAttentionFrequency === 0) out.push(`${l}.crossattention`);
  }
  return out;
}

/** Q-Former over [queries ; instruction] for one image: query outputs [1, Q, Dq]. `text` null: queries only. */
export function qformerWithText(p: qf.Blip2QFormerParams, cfg: qf.Blip2QFormerConfig, queryTokens: Tensor, emb: qf.QFormerTextEmbeddings | undefined, img: Tensor, text: Tensor | null): Tensor {
  const Q = queryTokens.shape[1]!;
  const q = F.expand(queryTokens, [img.shape[0]!, Q, cfg.hiddenSize]);
  if (text === null) return qf.forwardQFormer(p, cfg, q, img).lastHiddenState;
  if (emb === undefined) throw new Error('q-former: an instruction was given but the Q-Former has no text embeddings');
  const te = F.expand(qf.textEmbeds(emb, text), [img.shape[0]!, text.shape[1]!, cfg.hiddenSize]);
  const out = qf.forwardQFormer(p, cfg, F.concat([q, te], 1), img, { queryLength: Q }).lastHiddenState; // [B, Q + Tt, Dq]
  return F.slice(out, 1, 0, Q);
}

// ---- the system ----------------------------------------------------------------------------------

export interface Blip2Config {
  tower: QFormerTower;
  /** InstructBLIP: instruction tokens join the queries in the Q-Former. */
  instruct: boolean;
  /** Instruction tokens kept (128 in InstructBLIP). */
  maxInstruction: number;
  /** Q-Former text vocabulary: instruction ids are the LLM tokenizer's, so it defaults to the LLM vocabulary. */
  textVocab: number;
  textPositions: number;
}

export interface Blip2Params {
  vision_model: clip.ClipVisionParams['vision_model'];
  query_tokens: Tensor; // [1, Q, Dq]
  qformer: qf.Blip2QFormerParams & { embeddings?: qf.QFormerTextEmbeddings };
  language_projection: Linear; // [D, Dq]
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): Blip2Config {
  const tower = parseQFormerTower(r, 'qformer');
  const instruct = r.bool('qformer_text_input', false);
  if (instruct && !tower.qformer.useQformerTextInput) throw new Error(`${r.source}: qformer_text_input needs qformer.qformer_config.use_qformer_text_input: true (the text feed-forwards)`);
  const textPositions = r.int('qformer_max_position_embeddings', 512);
  const maxInstruction = r.int('max_instruction_length', 128, 1, textPositions);
  return { tower, instruct, maxInstruction, textVocab: r.int('qformer_vocab_size', llm.vocabSize), textPositions };
}

function info(cfg: Blip2Config): SystemInfo {
  const train = ['query_tokens', ...qformerTrainGlobs('qformer', cfg.tower.qformer, cfg.instruct), 'language_projection'];
  return {
    template: cfg.instruct ? 'instructblip' : 'blip2',
    layout: 'placeholder',
    keepPlaceholder: false,
    stages: { stage2: train }, // SPEC §8.3 / §8.4: Q-Former + projection; ViT and LLM frozen
    maxImages: 1,
    stopStrings: [],
    sampling: { temperature: 1, topP: 0.9 },
  };
}

function init(cfg: Blip2Config, llm: LlamaConfig, rng: Rng | null): Blip2Params {
  const t = initQFormerTower(cfg.tower, rng);
  const Dq = cfg.tower.qformer.hiddenSize;
  const qformer: Blip2Params['qformer'] = t.qformer;
  if (cfg.instruct) qformer.embeddings = qf.initTextEmbeddings(cfg.tower.qformer, cfg.textVocab, cfg.textPositions, rng);
  return { vision_model: t.vision_model, query_tokens: t.query_tokens, qformer, language_projection: rng ? initLinear(Dq, llm.hiddenSize, rng) : zeroLinear(Dq, llm.hiddenSize) };
}

function plan(cfg: Blip2Config, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.tower.vision.cfg.imageSize), positions: cfg.tower.numQueryTokens };
}

function prepare(cfg: Blip2Config, image: RgbImage, detail: Detail): PreparedImage {
  return prepareSquare(image, cfg.tower.vision.cfg.imageSize, detail, cfg.tower.numQueryTokens);
}

/** ViT tokens after ln_vision (the tower's post_layernorm): [V, S, E]. */
export function vitFeatures(vision: clip.ClipVisionConfig, vm: clip.ClipVisionParams['vision_model'], px: Tensor): Tensor {
  const p = { vision_model: vm };
  return clip.postLayerNorm(p, vision, clip.forwardClipVision(p, vision, px).lastHiddenState);
}

/** Q-Former query outputs per image [V, Q, Dq] (InstructBLIP: conditioned on each image's instruction). */
export function blip2QueryOutputs(cfg: Blip2Config, params: Blip2Params, images: readonly PreparedImage[]): Tensor {
  const img = runFrozen(params.vision_model, () => vitFeatures(cfg.tower.vision.cfg, params.vision_model, stackPixels(images))); // [V, S, E]
  const qc = cfg.tower.qformer;
  return runFrozen({ q: params.query_tokens, f: params.qformer }, () => {
    if (!cfg.instruct) return qf.forwardQFormerWithQueries(params.qformer, qc, params.query_tokens, img).lastHiddenState;
    const outs = images.map((im, i) => qformerWithText(params.qformer, qc, params.query_tokens, params.qformer.embeddings, F.slice(img, 0, i, i + 1), instructionIds(im, cfg.maxInstruction)));
    return outs.length === 1 ? outs[0]! : F.concat(outs, 0);
  });
}

function encode(cfg: Blip2Config, params: Blip2Params, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  void ctx;
  const out = linear(params.language_projection, blip2QueryOutputs(cfg, params, images)); // [V, Q, D]
  return splitRows(out, images.length);
}

export const system: VlmSystem<Blip2Config, Blip2Params> = { name: 'blip2', parseConfig, info, init, plan, prepare, encode };

// ---- templates ---------------------------------------------------------------------------------

// BLIP-2 (blip2_opt): [soft prompt ; BOS ; "Question: q Answer:"] and the answer; InstructBLIP
// (blip2_vicuna_instruct): [soft prompt ; BOS ; instruction] then the answer and EOS.
function blipTemplate(name: string, wrap: (q: string) => string): void {
  registerTemplate({
    name,
    stopStrings: [],
    render(turns, generation) {
      const out: Segment[] = [];
      const rest = turns.filter((t) => t.role !== 'system');
      if (rest.length === 0 || rest[0]!.role !== 'user') throw new Error(`${name} template: the conversation must start with a user turn`);
      if (generation && rest[rest.length - 1]!.role !== 'user') throw new Error(`${name} template: the last turn must be the user's to generate a reply`);
      rest.forEach((t, i) => {
        if (t.role === 'user') {
          for (const p of t.parts) if ('image' in p) out.push({ image: p.image });
          if (i === 0) out.push({ special: 'bos' });
          out.push({ text: wrap(t.parts.map((p) => ('text' in p ? p.text : '')).join('').trim()) });
        } else {
          out.push({ text: ` ${t.parts.map((p) => ('text' in p ? p.text : '')).join('')}`, supervised: true }, { special: 'eos', supervised: true });
        }
      });
      return out;
    },
  });
}
blipTemplate('blip2', (q) => (q === '' ? '' : `Question: ${q} Answer:`));
blipTemplate('instructblip', (q) => q);

// ---- presets -------------------------------------------------------------------------------------

// EVA ViT-g/14 at 224 with 39 blocks, width 1408 (SPEC §8.1; ffn 6144 and 16 heads are EVA-g's, not in SPEC).
export const EVA_G = (image = 224): Record<string, unknown> => clipConfig({ hidden: 1408, layers: 39, heads: 16, ffn: 6144, image, patch: 14, act: 'gelu' });
/** Q-Former: BERT-base, 12 layers × 768, cross-attention every 2nd layer, Q queries (SPEC §8.1). */
export const QFORMER_BASE = (vision: Record<string, unknown>, queries: number, text: boolean): Record<string, unknown> => {
  const c = qformerConfig({ vision, hidden: 768, layers: 12, heads: 12, ffn: 3072, queries });
  (c.qformer_config as Record<string, unknown>).use_qformer_text_input = text;
  return c;
};
export const TINY_EVA = (image = 56): Record<string, unknown> => clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image, patch: 14, act: 'gelu' });
export const TINY_QFORMER = (vision: Record<string, unknown>, queries: number, text: boolean): Record<string, unknown> => {
  const c = qformerConfig({ vision, hidden: 32, layers: 2, heads: 2, ffn: 64, queries });
  (c.qformer_config as Record<string, unknown>).use_qformer_text_input = text;
  return c;
};

export const presets: PresetDef[] = [
  {
    // OPT-2.7B's dims as a LLaMA-shaped decoder (2560 wide, 32 layers, ffn 10240, vocab 50272; not in SPEC).
    name: 'blip-2', system: 'blip2',
    real: () => ({ system: 'blip2', vision_config: { qformer: QFORMER_BASE(EVA_G(), 32, false) },
      text_config: llamaConfig({ dim: 2560, layers: 32, heads: 32, ffn: 10240, vocab: 50272, maxPos: 2048 }) }),
    tiny: () => ({ system: 'blip2', vision_config: { qformer: TINY_QFORMER(TINY_EVA(), 8, false) }, text_config: tinyLlama() }),
  },
  {
    // Vicuna-7B (SPEC §8.4); instruction ≤ 128 tokens embedded with a table over the LLM vocabulary.
    name: 'instructblip', system: 'blip2',
    real: () => ({ system: 'blip2', vision_config: { qformer: QFORMER_BASE(EVA_G(), 32, true), qformer_text_input: true, max_instruction_length: 128 },
      text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 32000, maxPos: 2048 }) }),
    tiny: () => ({ system: 'blip2', vision_config: { qformer: TINY_QFORMER(TINY_EVA(), 8, true), qformer_text_input: true, max_instruction_length: 16, qformer_max_position_embeddings: 32 },
      text_config: tinyLlama() }),
  },
];

// ---- stage 1: ITC, ITM, ITG (SPEC §8.2) ----------------------------------------------------------

/** The parts of a Q-Former that stage 1 trains: queries, the Q-Former (with text FFNs) and its heads. */
export interface QFormerStage1 {
  cfg: qf.Blip2QFormerConfig; // useQformerTextInput must be true
  qformer: qf.Blip2QFormerParams;
  query_tokens: Tensor; // [1, Q, Dq]
  heads: QFormerStage1Heads;
}

export interface QFormerStage1Heads {
  embeddings: qf.QFormerTextEmbeddings; // word [Vt, Dq], position [P, Dq]
  vision_proj: Linear; // [Ep, Dq]
  text_proj: Linear; // [Ep, Dq]
  itm_head: Linear; // [2, Dq]
  /** BERT LM head; the decoder weight is tied to embeddings.word_embeddings. */
  lm_head: { transform: { dense: Linear; LayerNorm: LayerNormParams }; bias: Tensor }; // dense [Dq, Dq], bias [Vt]
  temp: Tensor; // [1], initialised 0.07
}

/** Heads with N(0, initializer_range) weights, zero biases, temp 0.07. embedDim 256 as in BLIP-2. */
export function initStage1Heads(cfg: qf.Blip2QFormerConfig, o: { vocabSize: number; maxPositions?: number; embedDim?: number }, rng: Rng): QFormerStage1Heads {
  const D = cfg.hiddenSize, Ep = o.embedDim ?? 256;
  const normal = (r: number, c: number): Tensor => normalOrZero([r, c], cfg.initializerRange, rng);
  const L = (inF: number, outF: number): Linear => ({ weight: normal(outF, inF), bias: constInit([outF], 0) });
  return {
    embeddings: qf.initTextEmbeddings(cfg, o.vocabSize, o.maxPositions ?? 512, rng),
    vision_proj: L(D, Ep),
    text_proj: L(D, Ep),
    itm_head: L(D, 2),
    lm_head: { transform: { dense: L(D, D), LayerNorm: layerNormParams(D, rng) }, bias: constInit([o.vocabSize], 0) },
    temp: constInit([1], 0.07),
  };
}

/** A stage-1 text batch: ids i32 [B, T] (position 0 = [CLS]), mask [B, T] (1 = token, 0 = padding). */
export interface Stage1Text {
  ids: Tensor;
  mask: Tensor;
}

function l2normalize(x: Tensor): Tensor {
  return F.div(x, F.addScalar(F.sqrt(F.sum(F.square(x), -1, true)), 1e-12));
}

function maskData(m: Tensor): Float32Array {
  return F.denseData(m.dtype === 'f32' ? m : F.cast(m, 'f32'));
}

function checkBatch(m: QFormerStage1, image: Tensor, text: Stage1Text): [number, number] {
  if (!m.cfg.useQformerTextInput) throw new Error('q-former stage 1: the Q-Former needs its text feed-forwards (use_qformer_text_input: true)');
  if (image.ndim !== 3 || image.shape[2] !== m.cfg.encoderHiddenSize) throw new Error(`q-former stage 1: image features must be [B, S, ${m.cfg.encoderHiddenSize}], got ${image.describe()}`);
  const B = image.shape[0]!;
  if (text.ids.dtype !== 'i32' || text.ids.ndim !== 2 || text.ids.shape[0] !== B) throw new Error(`q-former stage 1: text ids must be i32 [${B}, T], got ${text.ids.describe()}`);
  const T = text.ids.shape[1]!;
  if (text.mask.ndim !== 2 || text.mask.shape[0] !== B || text.mask.shape[1] !== T) throw new Error(`q-former stage 1: text mask must be [${B}, ${T}], got ${text.mask.describe()}`);
  return [B, T];
}

/** Query outputs on the image alone: [B, Q, Dq]. */
function queryPass(m: QFormerStage1, image: Tensor): Tensor {
  return qf.forwardQFormerWithQueries(m.qformer, m.cfg, m.query_tokens, image).lastHiddenState;
}

export interface ItcResult {
  loss: Tensor; // []
  /** sim_i2t [B, B]: row i image, column j text: max over queries of the normalised dot product, / temp. */
  simI2T: Tensor;
  /** sim_t2i [B, B] = sim_i2t transposed. */
  simT2I: Tensor;
}

/**
 * ITC: image features normalize(vision_proj(Q_out)) [B, Q, Ep], text feature normalize(text_proj(CLS))
 * [B, Ep] from a text-only pass (queries and text never meet); similarity = max over queries / temp
 * (temp clamped to [0.001, 0.5]); cross-entropy both ways with label smoothing 0.1, averaged.
 */
export function itcLoss(m: QFormerStage1, image: Tensor, text: Stage1Text): ItcResult {
  const [B] = checkBatch(m, image, text);
  const Q = m.query_tokens.shape[1]!, h = m.heads;
  const img = l2normalize(linear(h.vision_proj, queryPass(m, image))); // [B, Q, Ep]
  const tOut = qf.forwardQFormer(m.qformer, m.cfg, qf.textEmbeds(h.embeddings, text.ids), image, { queryLength: 0, attentionMask: text.mask }).lastHiddenState; // [B, T, Dq]
  const txt = l2normalize(linear(h.text_proj, F.squeeze(F.slice(tOut, 1, 0, 1), 1))); // [B, Ep]
  const Ep = txt.shape[1]!;
  const dots = F.reshape(F.matmul(F.reshape(img, [B * Q, Ep]), F.transpose(txt, 0, 1)), [B, Q, B]); // [i, q, j]
  const temp = F.clamp(h.temp, 0.001, 0.5);
  const simI2T = F.div(F.max(dots, 1), temp); // [B, B]
  const simT2I = F.transpose(simI2T, 0, 1);
  const targets = fromData(Int32Array.from({ length: B }, (_, i) => i), [B], 'i32');
  const ce = (s: Tensor): Tensor => F.crossEntropy(s, targets, { labelSmoothing: 0.1 });
  return { loss: F.mul(F.add(ce(simI2T), ce(simT2I)), 0.5), simI2T, simT2I };
}

function sampleRow(w: Float32Array, rng: Rng): number {
  let u = rng.uniform() * w.reduce((a, b) => a + b, 0);
  for (let j = 0; j < w.length; j++) { u -= w[j]!; if (u < 0) return j; }
  return w.length - 1;
}

export interface ItmResult {
  loss: Tensor; // []
  logits: Tensor; // [3B, 2]: (image, text) pairs positive, (negative image, text), (image, negative text)
  labels: Int32Array; // [1]·B + [0]·2B
  negImage: Int32Array; // per text b, the hard negative image index
  negText: Int32Array; // per image b, the hard negative text index
}

/**
 * ITM: for each text a hard negative image and for each image a hard negative text, sampled from
 * softmax(sim) with the diagonal masked; the Q-Former runs on [queries ; text] with bidirectional
 * attention (text padding masked); itm_head on every query output, logits averaged over queries;
 * labels [1]·B + [0]·2B. Needs B >= 2.
 */
export function itmLoss(m: QFormerStage1, image: Tensor, text: Stage1Text, sims: { simI2T: Tensor; simT2I: Tensor }, rng: Rng): ItmResult {
  const [B, T] = checkBatch(m, image, text);
  if (B < 2) throw new Error(`q-former ITM: hard negatives need a batch of at least 2, got ${B}`);
  const Q = m.query_tokens.shape[1]!, Dq = m.cfg.hiddenSize;
  const negImage = new Int32Array(B), negText = new Int32Array(B);
  noGrad(() => {
    const soft = (s: Tensor): Float32Array => F.denseData(F.softmax(F.detach(s), -1));
    const t2i = soft(sims.simT2I), i2t = soft(sims.simI2T);
    for (let b = 0; b < B; b++) {
      const wi = t2i.slice(b * B, (b + 1) * B), wt = i2t.slice(b * B, (b + 1) * B);
      wi[b] = 0; wt[b] = 0;
      negImage[b] = sampleRow(wi, rng);
      negText[b] = sampleRow(wt, rng);
    }
  });
  const idx = (a: Int32Array): Tensor => fromData(a, [a.length], 'i32');
  const src = F.denseI32(text.ids), all = new Int32Array(3 * B * T);
  all.set(src, 0); all.set(src, B * T);
  for (let b = 0; b < B; b++) all.set(src.subarray(negText[b]! * T, (negText[b]! + 1) * T), (2 * B + b) * T);
  const ids = fromData(all, [3 * B, T], 'i32'); // [3B, T]: texts, texts, negative texts
  const tmask = F.cast(text.mask, 'f32');
  const mask = F.concat([F.ones([3 * B, Q]), F.concat([tmask, tmask, F.indexSelect(tmask, 0, idx(negText))], 0)], 1); // [3B, Q + T]
  const imgs = F.concat([image, F.indexSelect(image, 0, idx(negImage)), image], 0); // [3B, S, E]
  const q = F.expand(m.query_tokens, [3 * B, Q, Dq]);
  const x = F.concat([q, qf.textEmbeds(m.heads.embeddings, ids)], 1);
  const out = qf.forwardQFormer(m.qformer, m.cfg, x, imgs, { queryLength: Q, attentionMask: mask }).lastHiddenState; // [3B, Q + T, Dq]
  const logits = F.mean(linear(m.heads.itm_head, F.slice(out, 1, 0, Q)), 1); // [3B, 2]
  const labels = new Int32Array(3 * B);
  labels.fill(1, 0, B);
  return { loss: F.crossEntropy(logits, fromData(labels, [3 * B], 'i32')), logits, labels, negImage, negText };
}

/** The UniLM mask [B, Q + T, Q + T] (true = may attend): queries see queries; text sees all queries and earlier, unpadded text. */
export function itgMask(B: number, Q: number, T: number, textMask: Float32Array): Tensor {
  const n = Q + T, out = new Uint8Array(B * n * n);
  for (let b = 0; b < B; b++) for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
    const ok = c < Q ? true : r >= Q && c <= r && textMask[b * T + (c - Q)]! !== 0;
    out[(b * n + r) * n + c] = ok ? 1 : 0;
  }
  return fromData(out, [B, n, n], 'bool');
}

/**
 * ITG: the caption with [DEC] (`decBosId`) replacing [CLS], decoded under the UniLM mask (queries
 * see queries; text sees all queries and earlier text) — the same as reusing the query pass's keys
 * and values; the BERT LM head (tied decoder) predicts token t+1 from position t; padding ignored;
 * label smoothing 0.1.
 */
export function itgLoss(m: QFormerStage1, image: Tensor, text: Stage1Text, decBosId: number): { loss: Tensor; logits: Tensor } {
  const [B, T] = checkBatch(m, image, text);
  const Q = m.query_tokens.shape[1]!, Dq = m.cfg.hiddenSize, h = m.heads;
  const idsData = Int32Array.from(F.denseI32(text.ids));
  const md = maskData(text.mask);
  for (let b = 0; b < B; b++) idsData[b * T] = decBosId;
  const ids = fromData(idsData, [B, T], 'i32');
  const x = F.concat([F.expand(m.query_tokens, [B, Q, Dq]), qf.textEmbeds(h.embeddings, ids)], 1);
  const out = qf.forwardQFormer(m.qformer, m.cfg, x, image, { queryLength: Q, attentionMask: itgMask(B, Q, T, md) }).lastHiddenState;
  const t = F.slice(out, 1, Q); // [B, T, Dq]
  const tr = h.lm_head.transform;
  const hid = F.layerNorm(activation(m.cfg.hiddenAct)(linear(tr.dense, t)), tr.LayerNorm.weight, tr.LayerNorm.bias, m.cfg.layerNormEps);
  const logits = F.linear(hid, h.embeddings.word_embeddings.weight, h.lm_head.bias); // [B, T, Vt]
  const labels = new Int32Array(B * (T - 1));
  for (let b = 0; b < B; b++) for (let i = 1; i < T; i++) labels[b * (T - 1) + i - 1] = md[b * T + i]! !== 0 ? idsData[b * T + i]! : -100;
  if (T < 2) throw new Error('q-former ITG: captions need at least 2 tokens');
  const loss = F.crossEntropy(F.slice(logits, 1, 0, T - 1), fromData(labels, [B, T - 1], 'i32'), { labelSmoothing: 0.1 });
  return { loss, logits };
}

/** ITC + ITM + ITG (SPEC §8.2). */
export function stage1Loss(m: QFormerStage1, image: Tensor, text: Stage1Text, o: { decBosId: number; rng: Rng }): { loss: Tensor; itc: Tensor; itm: Tensor; itg: Tensor } {
  const c = itcLoss(m, image, text);
  const itm = itmLoss(m, image, text, c, o.rng).loss;
  const itg = itgLoss(m, image, text, o.decBosId).loss;
  return { loss: F.add(F.add(c.loss, itm), itg), itc: c.loss, itm, itg };
}
