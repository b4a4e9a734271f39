// The composable multimodal model (config.json model_type "chimera_vlm"): a system's encoders
// and bridge (system.ts) in front of a LLaMA decoder. This file owns what every system shares:
// the config, the parameter tree ({language_model, ...system keys}), sequence assembly (images
// spliced at their placeholders or after BOS), label alignment, the training loss, training
// stages, and a CausalLM view of one prompt for generation.
//
// Dims: B rows, L assembled positions, N image positions, D LLM width, V vocabulary.

import { noGrad } from '../../engine/autograd.ts';
import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import { fromData, tidy, type Tensor } from '../../engine/tensor.ts';
import { KVCache } from '../../nn/kv-cache.ts';
import type { RgbImage } from '../../vision/preprocess.ts';
import type { ViewGeom } from '../../vision/views.ts';
import type { CausalLM, ForwardOptions, KVCache as CacheHandle } from '../causal-lm.ts';
import { ConfigReader } from '../config.ts';
import { initLlama, llamaEmbed, llamaHead, llamaHidden, llamaPositionLimit, parseLlamaConfig, type LlamaConfig, type LlamaParams } from '../llama.ts';
import type { ModelFamily } from '../registry.ts';
import type { Detail, HookStep, PreparedImage, SystemHooks, SystemInfo, VlmSystem } from './system.ts';
import { systemFor } from './systems.ts';
import { IGNORE_INDEX, setTrainable } from './trainable.ts';

export { globToRegExp, IGNORE_INDEX, runFrozen, setTrainable } from './trainable.ts';

export const DEFAULT_IMAGE_TOKEN = '<image>';

export interface VlmConfig {
  preset: string;
  system: VlmSystem;
  /** The system's parsed vision_config. */
  vision: unknown;
  text: LlamaConfig;
  info: SystemInfo;
  /** Placeholder string in prompts and its id (a tokenizer special token, or any id the text never uses). */
  imageToken: string;
  imageTokenId: number;
}

/** The tree: `language_model.*` (HF LlamaForCausalLM keys) plus the system's top-level keys. */
export interface VlmParams {
  language_model: LlamaParams;
  [key: string]: unknown;
}

/** One training or inference sample: text ids (placeholders included) and its images in order. */
export interface VlmSample {
  ids: readonly number[];
  images: readonly PreparedImage[];
  /** Per id target (IGNORE_INDEX where nothing is learned); the model shifts them. */
  labels?: readonly number[];
}

/** Span of an image in an assembled row. */
export interface ImageSpan {
  image: number;
  start: number;
  length: number;
}

/** The layout of one sample in the LLM sequence, before any tensor is made. */
export interface Layout {
  /** Assembled ids: image positions hold imageTokenId. */
  ids: Int32Array;
  labels: Int32Array;
  spans: ImageSpan[];
  /** Index of the latest kept placeholder at or before each position (-1 none). */
  mediaIndex: Int32Array;
}

// ---- config ------------------------------------------------------------------------------------

export function parseVlmConfig(json: unknown, source = 'config.json'): VlmConfig {
  const r = new ConfigReader(json, source);
  const system = systemFor(r.str('system'), source);
  r.sub('text_config'); // presence and shape
  const text = parseLlamaConfig(r.raw('text_config'), `${source}:text_config`);
  const vision = system.parseConfig(r.sub('vision_config'), text);
  const imageTokenId = r.int('image_token_id', 0, 0);
  if (imageTokenId >= text.vocabSize) throw new Error(`${source}: 'image_token_id' ${imageTokenId} is outside the vocabulary (text_config.vocab_size ${text.vocabSize})`);
  return {
    preset: r.str('preset', r.str('system')),
    system, vision, text,
    info: system.info(vision),
    imageToken: r.str('image_token', DEFAULT_IMAGE_TOKEN),
    imageTokenId,
  };
}

export function initVlm(cfg: VlmConfig, rng: Rng | null): VlmParams {
  const lm = initLlama(cfg.text, rng);
  const rest = cfg.system.init(cfg.vision, cfg.text, rng, lm) as Record<string, unknown>;
  if (Object.hasOwn(rest, 'language_model')) throw new Error(`system '${cfg.system.name}': its parameters may not use the key 'language_model'`);
  return { language_model: lm, ...rest };
}

// ---- assembly ------------------------------------------------------------------------------------

/** Where each image goes and which positions carry labels. Throws when images and placeholders disagree. */
export function layoutSample(cfg: VlmConfig, s: VlmSample, where = 'sample'): Layout {
  const { ids, images } = s;
  if (ids.length === 0) throw new Error(`${where}: no tokens`);
  if (s.labels !== undefined && s.labels.length !== ids.length) throw new Error(`${where}: ${s.labels.length} labels for ${ids.length} ids`);
  const ph: number[] = [];
  ids.forEach((t, i) => { if (t === cfg.imageTokenId) ph.push(i); });
  const keep = cfg.info.keepPlaceholder;
  let insertAt: number[]; // insertion index in `ids` per image (before that id)
  if (ph.length === 0 && images.length > 0 && cfg.info.layout === 'after-bos' && !keep) {
    insertAt = images.map(() => 1);
  } else if (ph.length !== images.length) {
    throw new Error(`${where}: ${ph.length} '${cfg.imageToken}' placeholder${ph.length === 1 ? '' : 's'} but ${images.length} image${images.length === 1 ? '' : 's'}`);
  } else insertAt = ph;
  const outIds: number[] = [], outLabels: number[] = [], media: number[] = [], spans: ImageSpan[] = [];
  let img = 0, seen = -1;
  const push = (id: number, label: number): void => { outIds.push(id); outLabels.push(label); media.push(seen); };
  for (let i = 0; i <= ids.length; i++) {
    while (img < insertAt.length && insertAt[img] === i) {
      if (keep) { img++; break; }
      const n = images[img]!.positions;
      spans.push({ image: img, start: outIds.length, length: n });
      seen = img;
      for (let k = 0; k < n; k++) push(cfg.imageTokenId, IGNORE_INDEX);
      img++;
      if (ph.length > 0) break; // a placeholder stands for one image
    }
    if (i === ids.length) break;
    if (ph.length > 0 && !keep && ids[i] === cfg.imageTokenId) continue; // replaced above
    if (keep && ids[i] === cfg.imageTokenId) seen++;
    push(ids[i]!, s.labels?.[i] ?? IGNORE_INDEX);
  }
  return { ids: Int32Array.from(outIds), labels: Int32Array.from(outLabels), spans, mediaIndex: Int32Array.from(media) };
}

/** Row embeddings [L, D]: token embeddings with each image span replaced by its embedding. */
function rowEmbeds(cfg: VlmConfig, lm: LlamaParams, layout: Layout, imageEmbeds: readonly Tensor[]): Tensor {
  const pieces: Tensor[] = [];
  let at = 0;
  const text = (end: number): void => {
    if (end > at) pieces.push(F.squeeze(llamaEmbed(lm, cfg.text, fromData(layout.ids.slice(at, end), [1, end - at], 'i32')), 0)); // [t, D]
  };
  for (const sp of layout.spans) {
    text(sp.start);
    const e = imageEmbeds[sp.image]!;
    if (e.ndim !== 2 || e.shape[0] !== sp.length || e.shape[1] !== cfg.text.hiddenSize) {
      throw new Error(`system '${cfg.system.name}': image ${sp.image} was encoded as ${e.describe()} but its plan says [${sp.length}, ${cfg.text.hiddenSize}]`);
    }
    pieces.push(e);
    at = sp.start + sp.length;
  }
  text(layout.ids.length);
  return pieces.length === 1 ? pieces[0]! : F.concat(pieces, 0);
}

export interface Assembled {
  embeds: Tensor; // [B, L, D]
  labels: Tensor; // i32 [B, L], IGNORE_INDEX at images and padding
  layouts: Layout[];
  step: HookStep;
}

// ---- the model ---------------------------------------------------------------------------------

export interface VlmOutput {
  logits: Tensor; // [B, L, V]
  /** Mean next-token cross-entropy over labelled positions (+ aux), when labels were given. */
  loss: Tensor | null;
  ce: Tensor | null;
  aux: Tensor | null;
  layouts: Layout[];
}

export class VlmModel {
  readonly params: VlmParams;
  readonly config: VlmConfig;

  constructor(params: VlmParams, config: VlmConfig) {
    this.params = params;
    this.config = config;
  }

  get system(): VlmSystem { return this.config.system; }

  planImage(width: number, height: number, detail: Detail): { views: ViewGeom[]; positions: number } {
    return this.system.plan(this.config.vision, width, height, detail);
  }

  prepareImage(image: RgbImage, detail: Detail = 'high'): PreparedImage {
    return this.system.prepare(this.config.vision, image, detail);
  }

  /** Per image embeddings ([positions, D] or cross-attention media), in sample order. */
  encodeImages(images: readonly PreparedImage[]): Tensor[] {
    if (images.length === 0) return [];
    return this.system.encode(this.config.vision, this.params, images, { llm: this.config.text, lm: this.params.language_model });
  }

  /** Marks the parameters of a named stage trainable and everything else frozen; returns the trainable paths. */
  setStage(stage: string): string[] {
    const globs = this.config.info.stages[stage];
    if (globs === undefined) throw new Error(`preset '${this.config.preset}' has no stage '${stage}' (stages: ${Object.keys(this.config.info.stages).join(', ')})`);
    return setTrainable(this.params, globs);
  }

  /** Assembles rows (right-padded) for a full pass. */
  assemble(samples: readonly VlmSample[]): Assembled {
    if (samples.length === 0) throw new Error('vlm: no samples');
    const layouts = samples.map((s, i) => layoutSample(this.config, s, `sample ${i}`));
    const all = samples.flatMap((s) => s.images);
    const enc = this.encodeImages(all);
    const perRow: Tensor[][] = [];
    let k = 0;
    for (const s of samples) { perRow.push(enc.slice(k, k + s.images.length)); k += s.images.length; }
    const L = Math.max(...layouts.map((l) => l.ids.length)), B = samples.length, D = this.config.text.hiddenSize;
    const rows = layouts.map((lay, b) => {
      const r = rowEmbeds(this.config, this.params.language_model, lay, perRow[b]!);
      const pad = L - lay.ids.length;
      return pad === 0 ? r : F.concat([r, F.zeros([pad, D])], 0);
    });
    const labels = new Int32Array(B * L).fill(IGNORE_INDEX);
    const imageMask = new Uint8Array(B * L), mediaIndex = new Int32Array(B * L).fill(-1);
    layouts.forEach((lay, b) => {
      labels.set(lay.labels, b * L);
      mediaIndex.set(lay.mediaIndex, b * L);
      for (const sp of lay.spans) imageMask.fill(1, b * L + sp.start, b * L + sp.start + sp.length);
    });
    const media = perRow.map((r, b) => (this.config.info.keepPlaceholder ? r : r.filter((_, i) => samples[b]!.images[i]!.positions === 0)));
    return {
      embeds: B === 1 ? F.unsqueeze(rows[0]!, 0) : F.stack(rows, 0),
      labels: fromData(labels, [B, L], 'i32'),
      layouts,
      step: { B, T: L, P: 0, imageMask, mediaIndex, media, hasImage: samples.map((s) => s.images.length > 0) },
    };
  }

  hooksFor(step: HookStep): SystemHooks | null {
    return this.system.hooks ? this.system.hooks(this.config.vision, this.params, this.config.text, step) : null;
  }

  /**
   * A full pass over samples: logits for every assembled position and, when any sample has
   * labels, the loss (output i is scored against label i + 1, as text-only training). Records a
   * graph for trainable parameters when grad is enabled.
   */
  forward(samples: readonly VlmSample[]): VlmOutput {
    return tidy(() => {
      const a = this.assemble(samples);
      const hooks = this.hooksFor(a.step);
      const hidden = llamaHidden(this.params.language_model, this.config.text, a.embeds, { hooks }); // [B, L, D]
      const logits = llamaHead(this.params.language_model, hidden); // [B, L, V]
      const withLabels = samples.some((s) => s.labels !== undefined);
      let ce: Tensor | null = null, loss: Tensor | null = null;
      const aux = hooks?.auxLoss?.() ?? null;
      if (withLabels) {
        const L = logits.shape[1]!;
        ce = L < 2 ? F.mul(F.sum(logits), 0) : F.crossEntropy(F.slice(logits, 1, 0, L - 1), F.slice(a.labels, 1, 1), { ignoreIndex: IGNORE_INDEX });
        loss = aux === null ? ce : F.add(ce, aux);
      }
      return { logits, loss, ce, aux, layouts: a.layouts };
    });
  }

  /** A batch-1 CausalLM over one prompt: the first forward consumes `layout.ids` with the images spliced in. */
  session(sample: VlmSample): VlmSession {
    return new VlmSession(this, sample);
  }

  get maxPositions(): number {
    return llamaPositionLimit(this.config.text);
  }
}

/** Generation over one prompt. Image embeddings are computed once, at construction. */
export class VlmSession implements CausalLM {
  readonly layout: Layout;
  private readonly model: VlmModel;
  private readonly embeds: Tensor; // [1, L, D]
  private readonly media: Tensor[];
  private readonly hasImage: boolean;
  private disposed = false;

  constructor(model: VlmModel, sample: VlmSample) {
    this.model = model;
    const a = noGrad(() => model.assemble([sample]));
    this.layout = a.layouts[0]!;
    this.embeds = a.embeds;
    this.media = a.step.media[0]!;
    this.hasImage = sample.images.length > 0;
  }

  get ids(): number[] { return Array.from(this.layout.ids); }
  get vocabSize(): number { return this.model.config.text.vocabSize; }
  get maxPositions(): number { return this.model.maxPositions; }

  newCache(batch: number, capacity: number): CacheHandle {
    if (batch !== 1) throw new Error(`vlm session: batch ${batch}; a session generates one prompt`);
    if (capacity > this.maxPositions) throw new Error(`vlm: cache capacity ${capacity} exceeds the context length ${this.maxPositions}`);
    const t = this.model.config.text;
    return new KVCache(t.numLayers, 1, t.numKvHeads, t.headDim, capacity);
  }

  forward(tokens: Tensor, cache: CacheHandle, opts: ForwardOptions = {}): Tensor {
    if (this.disposed) throw new Error('vlm session: used after dispose()');
    if (!(cache instanceof KVCache)) throw new Error('vlm session: the cache must come from newCache()');
    if (tokens.ndim !== 2 || tokens.shape[0] !== 1) throw new Error(`vlm session: tokens must be [1, T], got ${tokens.describe()}`);
    const T = tokens.shape[1]!, P = cache.length, L = this.layout.ids.length;
    const m = this.model, t = m.config.text;
    return noGrad(() => tidy(() => {
      let input: Tensor = tokens;
      const imageMask = new Uint8Array(T), mediaIndex = new Int32Array(T);
      if (P === 0) {
        if (T !== L) throw new Error(`vlm session: the first call must carry the ${L} prompt ids, got ${T}`);
        input = this.embeds;
        for (const sp of this.layout.spans) imageMask.fill(1, sp.start, sp.start + sp.length);
        mediaIndex.set(this.layout.mediaIndex);
      } else {
        mediaIndex.fill(this.layout.mediaIndex[L - 1] ?? -1);
      }
      const hooks = m.hooksFor({ B: 1, T, P, imageMask, mediaIndex, media: [this.media], hasImage: [this.hasImage] });
      const hidden = llamaHidden(m.params.language_model, t, input, { cache, attentionMask: opts.attentionMask ?? null, lastOnly: opts.lastOnly ?? false, hooks });
      return llamaHead(m.params.language_model, hidden);
    }));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.embeds.dispose();
    for (const x of this.media) x.dispose();
  }
}

// ---- registry entry ---------------------------------------------------------------------------

export const family: ModelFamily<VlmConfig, VlmParams> = {
  modelType: 'chimera_vlm',
  parseConfig: parseVlmConfig,
  init: initVlm,
  ignoreKeys: [/(^|\.)rotary_emb\.inv_freq$/],
  inputs: ['input_ids', 'image'],
  /** input_ids i32 [1, T] (placeholders included); image f32 [H, W, 3] in [0, 1] (optional). Output logits [1, L, V]. */
  forward(params, cfg, inputs) {
    const ids = inputs.get('input_ids');
    if (ids === undefined) throw new Error(`chimera_vlm: missing input 'input_ids' (got ${[...inputs.keys()].join(', ') || 'none'})`);
    if (ids.dtype !== 'i32' || ids.ndim !== 2 || ids.shape[0] !== 1) throw new Error(`chimera_vlm: input_ids must be i32 [1, T], got ${ids.describe()}`);
    const img = inputs.get('image');
    const model = new VlmModel(params, cfg);
    const images: PreparedImage[] = [];
    if (img !== undefined) {
      if (img.ndim !== 3 || img.shape[2] !== 3) throw new Error(`chimera_vlm: image must be f32 [H, W, 3] in [0, 1], got ${img.describe()}`);
      images.push(model.prepareImage({ width: img.shape[1]!, height: img.shape[0]!, data: F.denseData(F.cast(img, 'f32')) }, 'high'));
    }
    const out = noGrad(() => model.forward([{ ids: Array.from(F.denseI32(ids)), images }]));
    for (const p of images) for (const t of Object.values(p.pixels)) t.dispose();
    return new Map([['logits', out.logits]]);
  },
};
