// Training data for the trainer: the `TrainData` contract (batches of model samples plus a
// plain-JSON position for checkpoints), LLaVA-style conversations tokenised with the model's
// template, and two sources: files (a conversations JSON/JSONL or a dataset meta config, sampled
// by src/data/meta.ts MixSampler, batches homogeneous by type) and an in-memory list. Each
// record is tokenised once; each image is decoded and prepared once and cached (by path and
// detail, evicted least-recently-used past a byte budget).

import * as fs from 'node:fs';
import { Rng } from '../engine/rng.ts';
import { untracked, type Tensor } from '../engine/tensor.ts';
import { loadConversations, type ConversationRecord } from '../data/conversations.ts';
import { loadMetaConfig, MixSampler, type SamplerState, type SamplingMode } from '../data/meta.ts';
import { IMAGE_PLACEHOLDER, type Turn as DataTurn } from '../data/types.ts';
import { decodeImage } from '../io/image.ts';
import type { Tokenizer } from '../io/tokenizer.ts';
import { IGNORE_INDEX, layoutSample, type VlmModel, type VlmSample } from '../models/vlm/model.ts';
import type { PreparedImage } from '../models/vlm/system.ts';
import { templateFor, tokenizeSegments, type Turn } from '../models/vlm/templates.ts';
import type { DataSpec, Detail } from './stages.ts';

export interface TrainBatch {
  samples: VlmSample[];
  /** Dataset type of the batch (batches are homogeneous by type). */
  type: string;
  /** Record ids, for logs. */
  ids: string[];
}

/** What the trainer draws batches from. `state()` must be plain JSON that `restore` accepts to continue exactly. */
export interface TrainData {
  next(): Promise<TrainBatch>;
  state(): unknown;
  restore(state: unknown): void;
  /** Frees cached tensors. */
  dispose?(): void;
}

export interface EncodedConversation {
  ids: number[];
  labels: number[];
  /** Per image (in placeholder order), the ids of the user text around it (text-guided bridges). */
  instructions: number[][];
}

/**
 * A LLaVA-style conversation (`{from: human|gpt, value}` with `<image>` placeholders) as ids and
 * labels in the model's template; assistant text (and the template's end marks) is supervised.
 * SPHINX-style systems (images right after BOS) lose the placeholder of a single image, as
 * VlmChatModel.prepare does at inference.
 */
export function encodeConversation(model: VlmModel, tokenizer: Tokenizer, conv: readonly DataTurn[], imageCount: number): EncodedConversation {
  const cfg = model.config;
  const turns: Turn[] = [];
  const instructionsText: string[] = [];
  let img = 0;
  for (const t of conv) {
    const pieces = t.value.split(IMAGE_PLACEHOLDER);
    const parts: Turn['parts'] = [];
    pieces.forEach((text, k) => {
      if (k > 0) parts.push({ image: img++ });
      if (text !== '') parts.push({ text });
    });
    if (t.from === 'human') for (let k = 1; k < pieces.length; k++) instructionsText.push(pieces.join(' ').trim());
    turns.push({ role: t.from === 'human' ? 'user' : 'assistant', parts });
  }
  if (img !== imageCount) throw new Error(`${img} ${IMAGE_PLACEHOLDER} placeholder${img === 1 ? '' : 's'} but ${imageCount} image${imageCount === 1 ? '' : 's'}`);
  const segs = templateFor(cfg.info.template).render(turns, false);
  let { ids, labels } = tokenizeSegments(tokenizer, segs, cfg.imageTokenId);
  if (cfg.info.layout === 'after-bos' && !cfg.info.keepPlaceholder && imageCount === 1) {
    const keep = ids.map((t) => t !== cfg.imageTokenId);
    ids = ids.filter((_, i) => keep[i]);
    labels = labels.filter((_, i) => keep[i]);
  }
  const instructions = instructionsText.map((s) => tokenizer.encode(s, { addSpecialTokens: false }));
  return { ids, labels, instructions };
}

/** Supervised targets of a sample after the one-position shift (what the mean loss divides by). */
export function countTargets(model: VlmModel, s: VlmSample): number {
  const lay = layoutSample(model.config, s);
  let n = 0;
  for (let i = 1; i < lay.labels.length; i++) if (lay.labels[i] !== IGNORE_INDEX) n++;
  return n;
}

/** Assembled LLM positions of a sample (text + image positions). */
export function countPositions(model: VlmModel, s: VlmSample): number {
  return layoutSample(model.config, s).ids.length;
}

function pixelBytes(p: PreparedImage): number {
  let n = 0;
  for (const t of Object.values(p.pixels)) n += t.size * 4;
  return n;
}

function disposePrepared(p: PreparedImage): void {
  for (const t of Object.values(p.pixels) as Tensor[]) t.dispose();
}

/** Decoded + prepared images by (path, detail), least-recently-used eviction past `maxBytes`. */
export class ImageCache {
  private readonly entries = new Map<string, { p: PreparedImage; bytes: number; used: number }>();
  private bytes = 0;
  private clock = 0;
  hits = 0;
  misses = 0;

  private readonly model: VlmModel;
  readonly maxBytes: number;
  private readonly pinDraws: number;

  constructor(model: VlmModel, maxBytes = 1 << 30, pinDraws = 64) {
    this.model = model;
    this.maxBytes = maxBytes;
    this.pinDraws = pinDraws;
  }

  /** Marks the start of a draw: entries used within the last `pinDraws` draws are never evicted (batches still in flight). */
  tick(): void { this.clock++; }

  async get(file: string, detail: Detail): Promise<PreparedImage> {
    const key = `${detail}\u0000${file}`;
    const e = this.entries.get(key);
    if (e !== undefined) {
      this.hits++;
      e.used = this.clock;
      this.entries.delete(key);
      this.entries.set(key, e); // most recent last
      return e.p;
    }
    this.misses++;
    let img;
    try { img = await decodeImage(file); } catch (err) { throw new Error(`${file}: ${(err as Error).message}`); }
    const p = untracked(() => this.model.prepareImage(img, detail));
    const bytes = pixelBytes(p);
    this.entries.set(key, { p, bytes, used: this.clock });
    this.bytes += bytes;
    this.evict();
    return p;
  }

  private evict(): void {
    if (this.bytes <= this.maxBytes) return;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      if (this.clock - e.used < this.pinDraws) continue;
      disposePrepared(e.p);
      this.entries.delete(k);
      this.bytes -= e.bytes;
    }
  }

  get size(): number { return this.entries.size; }

  dispose(): void {
    for (const e of this.entries.values()) disposePrepared(e.p);
    this.entries.clear();
    this.bytes = 0;
  }
}

interface LoadedSet {
  name: string;
  type: string;
  records: ConversationRecord[];
  /** Tokenised on first use. */
  encoded: (EncodedConversation | null)[];
}

export interface ConversationDataOptions {
  model: VlmModel;
  tokenizer: Tokenizer;
  batchSize: number;
  seed: number;
  detail?: Detail;
  /** Shared image cache (stages over the same data reuse decoded images). */
  cache?: ImageCache;
}

/** True when a .json file is a dataset meta config rather than a conversations file. */
export function isMetaConfig(file: string): boolean {
  if (!file.endsWith('.json')) return false;
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(512);
  const n = fs.readSync(fd, head, 0, 512, 0);
  fs.closeSync(fd);
  const s = head.subarray(0, n).toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (s.startsWith('{')) return /^\{\s*"(META|datasets|sampling)"/.test(s);
  return false;
}

/**
 * Conversations from a JSON/JSONL file or a meta config, as a TrainData. Records are loaded
 * (validated, image paths checked) up front; tokens and pixels on first use.
 */
export class ConversationData implements TrainData {
  private readonly sets: LoadedSet[];
  private readonly sampler: MixSampler;
  private readonly model: VlmModel;
  private readonly tokenizer: Tokenizer;
  private readonly detail: Detail;
  readonly cache: ImageCache;
  private readonly ownsCache: boolean;

  private constructor(sets: LoadedSet[], mode: SamplingMode, o: ConversationDataOptions, ratios: number[], weights: (number | null)[]) {
    this.sets = sets;
    this.model = o.model;
    this.tokenizer = o.tokenizer;
    this.detail = o.detail ?? 'high';
    this.ownsCache = o.cache === undefined;
    this.cache = o.cache ?? new ImageCache(o.model);
    this.sampler = new MixSampler(sets.map((s, i) => ({ name: s.name, type: s.type, size: s.records.length, ratio: ratios[i]!, weight: weights[i] ?? null })), { batchSize: o.batchSize, seed: o.seed, mode });
  }

  static async open(spec: DataSpec, o: ConversationDataOptions): Promise<ConversationData> {
    if (!fs.existsSync(spec.path)) throw new Error(`${spec.path}: data file not found`);
    const copts = { skipInvalid: spec.skipInvalid ?? false };
    if (isMetaConfig(spec.path)) {
      const meta = loadMetaConfig(spec.path);
      const sets: LoadedSet[] = [];
      for (const d of meta.datasets) {
        const { records } = await loadConversations(d.path, { ...copts, root: d.root });
        sets.push({ name: d.name, type: d.type, records, encoded: records.map(() => null) });
      }
      return new ConversationData(sets, meta.sampling, o, meta.datasets.map((d) => d.ratio), meta.datasets.map((d) => d.weight));
    }
    const { records } = await loadConversations(spec.path, { ...copts, ...(spec.root !== undefined ? { root: spec.root } : {}) });
    return new ConversationData([{ name: 'data', type: 'conversation', records, encoded: records.map(() => null) }], 'size', o, [1], [null]);
  }

  /** Records in all datasets. */
  get size(): number { return this.sets.reduce((a, s) => a + s.records.length, 0); }

  private encoded(set: LoadedSet, i: number): EncodedConversation {
    let e = set.encoded[i];
    if (e === null || e === undefined) {
      const r = set.records[i]!;
      try { e = encodeConversation(this.model, this.tokenizer, r.conversations, r.images.length); } catch (err) { throw new Error(`${r.source.file}:${r.source.line}: ${(err as Error).message}`); }
      set.encoded[i] = e;
    }
    return e;
  }

  async next(): Promise<TrainBatch> {
    this.cache.tick();
    const b = this.sampler.next();
    const samples: VlmSample[] = [], ids: string[] = [];
    for (const it of b.items) {
      const set = this.sets[it.dataset]!, r = set.records[it.index]!;
      const enc = this.encoded(set, it.index);
      const images: PreparedImage[] = [];
      for (let k = 0; k < r.images.length; k++) {
        const p = await this.cache.get(r.images[k]!, this.detail);
        images.push(enc.instructions[k] !== undefined ? { ...p, instruction: enc.instructions[k] } : p);
      }
      const s: VlmSample = { ids: enc.ids, labels: enc.labels, images };
      const L = countPositions(this.model, s);
      if (L > this.model.maxPositions) throw new Error(`${r.source.file}:${r.source.line}: sample '${r.id}' takes ${L} positions (text and images), over the model's context length ${this.model.maxPositions}`);
      samples.push(s);
      ids.push(r.id);
    }
    return { samples, type: b.type, ids };
  }

  state(): SamplerState { return this.sampler.state(); }

  restore(state: unknown): void { this.sampler.setState(state as SamplerState); }

  dispose(): void { if (this.ownsCache) this.cache.dispose(); }
}

/** In-memory samples, drawn in a seeded permutation per epoch. The caller owns the samples' pixels. */
export class SampleData implements TrainData {
  private epoch = 0;
  private pos = 0;
  private order: Int32Array;

  private readonly samples: readonly VlmSample[];
  private readonly batchSize: number;
  private readonly seed: number;
  private readonly shuffle: boolean;

  constructor(samples: readonly VlmSample[], batchSize: number, seed = 0, shuffle = true) {
    this.samples = samples;
    this.batchSize = batchSize;
    this.seed = seed;
    this.shuffle = shuffle;
    if (samples.length === 0) throw new Error('SampleData: no samples');
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`SampleData: batchSize must be a positive integer, got ${batchSize}`);
    this.order = this.perm();
  }

  private perm(): Int32Array {
    const n = this.samples.length;
    const o = Int32Array.from({ length: n }, (_, i) => i);
    if (!this.shuffle) return o;
    const r = new Rng((this.seed * 7919 + this.epoch * 104729 + 1) >>> 0);
    for (let j = n - 1; j > 0; j--) { const t = r.int(j + 1); const x = o[j]!; o[j] = o[t]!; o[t] = x; }
    return o;
  }

  async next(): Promise<TrainBatch> {
    const samples: VlmSample[] = [], ids: string[] = [];
    for (let b = 0; b < this.batchSize; b++) {
      const i = this.order[this.pos]!;
      samples.push(this.samples[i]!);
      ids.push(String(i));
      if (++this.pos >= this.order.length) { this.pos = 0; this.epoch++; this.order = this.perm(); }
    }
    return { samples, type: 'samples', ids };
  }

  state(): { epoch: number; pos: number; seed: number } { return { epoch: this.epoch, pos: this.pos, seed: this.seed }; }

  restore(s: unknown): void {
    const st = s as { epoch?: unknown; pos?: unknown; seed?: unknown };
    if (st === null || typeof st !== 'object' || !Number.isInteger(st.epoch) || !Number.isInteger(st.pos) || st.seed !== this.seed) throw new Error(`SampleData.restore: bad state ${JSON.stringify(s)}`);
    this.epoch = st.epoch as number;
    this.order = this.perm();
    this.pos = st.pos as number;
    if (this.pos < 0 || this.pos >= this.order.length) throw new Error(`SampleData.restore: position ${this.pos} outside 0..${this.order.length - 1}`);
  }
}
