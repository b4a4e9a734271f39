// Dataset mixtures: a meta config listing datasets (path, type, root, ratio, weight), sampling
// weights (size-proportional, square-root as InstructBLIP, or explicit), and a seeded, resumable
// sampler whose batches are homogeneous by type and whose state is plain JSON.
//
// Config shapes accepted (JSON; the LLaMA2-Accessory META list, without YAML):
//   {"META": [{"path", "type", "root"?, "ratio"?, "weight"?, "name"?}, ...], "sampling"?: "size"|"sqrt"|"explicit"}
//   {"datasets": [...same...], "sampling"?: ...}   or a bare array of entries.
// `ratio` (default 1) scales a dataset's effective size: 0.5 uses half its records per epoch,
// 2 repeats it twice; it may be a number or a string "0.5", "1/3", "50%". `weight` is the
// explicit sampling weight (required for every entry when sampling is "explicit").

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../engine/rng.ts';

export type SamplingMode = 'size' | 'sqrt' | 'explicit';

export interface DatasetSpec {
  name: string;
  /** Resolved against the config's folder. */
  path: string;
  type: string;
  /** Image root, resolved against the config's folder; default the dataset file's folder. */
  root: string;
  ratio: number;
  weight: number | null;
}

export interface MetaConfig {
  file: string;
  datasets: DatasetSpec[];
  sampling: SamplingMode;
}

export class MetaConfigError extends Error {}

/** Parses a ratio: a finite number >= 0, or "0.5", "1/3", "50%". Throws naming the text. */
export function parseRatio(v: unknown, where = 'ratio'): number {
  let n = NaN;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    const s = v.trim();
    let m: RegExpExecArray | null;
    if ((m = /^(\d+(?:\.\d*)?|\.\d+)\s*%$/.exec(s))) n = Number(m[1]) / 100;
    else if ((m = /^(\d+(?:\.\d*)?)\s*\/\s*(\d+(?:\.\d*)?)$/.exec(s))) n = Number(m[2]) === 0 ? NaN : Number(m[1]) / Number(m[2]);
    else if (/^(\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/.test(s)) n = Number(s);
  }
  if (!Number.isFinite(n) || n < 0) throw new MetaConfigError(`${where}: cannot parse ${JSON.stringify(v)} as a ratio (a number >= 0, "0.5", "1/3" or "50%")`);
  return n;
}

/** Parses a meta config's text; `file` names it in errors and anchors relative paths. */
export function parseMetaConfig(text: string, file: string): MetaConfig {
  let j: unknown;
  try { j = JSON.parse(text); } catch (e) { throw new MetaConfigError(`${file}: malformed JSON: ${(e as Error).message}`); }
  const base = path.dirname(file);
  let entries: unknown;
  let sampling: unknown = 'size';
  if (Array.isArray(j)) entries = j;
  else if (j !== null && typeof j === 'object') {
    const o = j as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['META', 'datasets', 'sampling'].includes(k)) throw new MetaConfigError(`${file}: unknown key "${k}" (expected META or datasets, and sampling)`);
    if (o['META'] !== undefined && o['datasets'] !== undefined) throw new MetaConfigError(`${file}: give "META" or "datasets", not both`);
    entries = o['META'] ?? o['datasets'];
    if (o['sampling'] !== undefined) sampling = o['sampling'];
  }
  if (!Array.isArray(entries)) throw new MetaConfigError(`${file}: expected a "META" (or "datasets") array of dataset entries`);
  if (entries.length === 0) throw new MetaConfigError(`${file}: the dataset list is empty`);
  if (sampling !== 'size' && sampling !== 'sqrt' && sampling !== 'explicit') throw new MetaConfigError(`${file}: "sampling" must be "size", "sqrt" or "explicit", got ${JSON.stringify(sampling)}`);
  const names = new Set<string>();
  const datasets = entries.map((e, i): DatasetSpec => {
    const w = `${file}: META[${i}]`;
    if (e === null || typeof e !== 'object' || Array.isArray(e)) throw new MetaConfigError(`${w}: expected an object`);
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!['path', 'type', 'root', 'ratio', 'weight', 'name'].includes(k)) throw new MetaConfigError(`${w}: unknown key "${k}"`);
    if (typeof o['path'] !== 'string' || o['path'] === '') throw new MetaConfigError(`${w}: "path" must be a non-empty string`);
    const type = o['type'] ?? 'image_text';
    if (typeof type !== 'string' || type === '') throw new MetaConfigError(`${w}: "type" must be a non-empty string`);
    if (o['root'] !== undefined && typeof o['root'] !== 'string') throw new MetaConfigError(`${w}: "root" must be a string`);
    const p = path.resolve(base, o['path']);
    const name = typeof o['name'] === 'string' && o['name'] !== '' ? o['name'] : path.basename(o['path']);
    if (names.has(name)) throw new MetaConfigError(`${w}: duplicate dataset name "${name}" (set "name" to tell them apart)`);
    names.add(name);
    const ratio = o['ratio'] === undefined ? 1 : parseRatio(o['ratio'], `${w} "ratio"`);
    const weight = o['weight'] === undefined ? null : parseRatio(o['weight'], `${w} "weight"`);
    if (sampling === 'explicit' && weight === null) throw new MetaConfigError(`${w}: sampling is "explicit" but this entry has no "weight"`);
    return { name, path: p, type, root: o['root'] !== undefined ? path.resolve(base, o['root']) : path.dirname(p), ratio, weight };
  });
  return { file, datasets, sampling };
}

export function loadMetaConfig(file: string): MetaConfig {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) { throw new MetaConfigError(`${file}: cannot read: ${(e as Error).message}`); }
  return parseMetaConfig(text, file);
}

/** Normalised sampling weights: ∝ size, ∝ sqrt(size) (InstructBLIP), or the explicit weights. */
export function samplingWeights(sizes: readonly number[], mode: SamplingMode, explicit?: readonly (number | null)[]): number[] {
  if (sizes.length === 0) throw new Error('samplingWeights: no datasets');
  const raw = sizes.map((n, i) => {
    if (!(n >= 0) || !Number.isFinite(n)) throw new Error(`samplingWeights: dataset ${i} has size ${n}`);
    if (mode === 'explicit') {
      const w = explicit?.[i];
      if (w === null || w === undefined || !(w >= 0)) throw new Error(`samplingWeights: dataset ${i} has no explicit weight`);
      return n === 0 ? 0 : w;
    }
    return mode === 'sqrt' ? Math.sqrt(n) : n;
  });
  const tot = raw.reduce((a, b) => a + b, 0);
  if (!(tot > 0)) throw new Error('samplingWeights: every dataset has weight 0');
  return raw.map((w) => w / tot);
}

export interface MixSource {
  name: string;
  type: string;
  /** Records in the dataset. */
  size: number;
  /** Effective-size factor (see `ratio` above); default 1. */
  ratio?: number;
  /** Explicit weight (mode 'explicit'). */
  weight?: number | null;
}

export interface MixItem {
  /** Index into the sources. */
  dataset: number;
  /** Record index within that dataset. */
  index: number;
}

export interface MixBatch {
  type: string;
  items: MixItem[];
}

/** Plain-JSON sampler position, for checkpoints. */
export interface SamplerState {
  version: 1;
  seed: number;
  step: number;
  rng: number[];
  /** Per dataset: epoch and position within its epoch order. */
  cursors: { name: string; epoch: number; pos: number }[];
}

/**
 * Seeded mixture sampler. Each batch first draws a type (by the summed weights of its
 * datasets), then fills every slot with a dataset of that type (by weight) and that dataset's
 * next record. Each dataset walks a seeded permutation per epoch of round(size·ratio) records
 * (ratio > 1 repeats records), so records are seen without replacement within an epoch.
 * `state()`/`setState()` resume exactly.
 */
export class MixSampler {
  readonly sources: readonly MixSource[];
  readonly weights: readonly number[];
  readonly batchSize: number;
  private readonly seed: number;
  private readonly rng: Rng;
  private step = 0;
  private cursors: { epoch: number; pos: number }[];
  private orders: (Int32Array | null)[];
  private readonly types: string[];

  constructor(sources: readonly MixSource[], opts: { batchSize: number; seed?: number; mode?: SamplingMode }) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`MixSampler: batchSize must be a positive integer, got ${opts.batchSize}`);
    this.sources = sources;
    const eff = sources.map((s) => Math.round(s.size * (s.ratio ?? 1)));
    this.weights = samplingWeights(eff, opts.mode ?? 'size', sources.map((s) => s.weight ?? null));
    sources.forEach((s, i) => { if (this.weights[i]! > 0 && s.size === 0) throw new Error(`MixSampler: dataset '${s.name}' is empty`); });
    this.batchSize = opts.batchSize;
    this.seed = opts.seed ?? 0;
    this.rng = new Rng(this.seed);
    this.cursors = sources.map(() => ({ epoch: 0, pos: 0 }));
    this.orders = sources.map(() => null);
    this.types = [...new Set(sources.map((s) => s.type))];
  }

  /** Records per epoch of dataset i. */
  epochLength(i: number): number {
    return Math.max(1, Math.round(this.sources[i]!.size * (this.sources[i]!.ratio ?? 1)));
  }

  private order(i: number): Int32Array {
    let o = this.orders[i];
    if (o) return o;
    const n = this.sources[i]!.size, L = this.epochLength(i);
    const r = new Rng((Math.imul(this.seed ^ 0x5bd1e995, 31) + Math.imul(i + 1, 0x27d4eb2d) + Math.imul(this.cursors[i]!.epoch + 1, 0x165667b1)) >>> 0);
    o = new Int32Array(L);
    // Concatenated shuffled copies of 0..n-1, cut to L.
    for (let k = 0; k < L; k += n) {
      const perm = Int32Array.from({ length: n }, (_, j) => j);
      for (let j = n - 1; j > 0; j--) { const t = r.int(j + 1); const x = perm[j]!; perm[j] = perm[t]!; perm[t] = x; }
      o.set(perm.subarray(0, Math.min(n, L - k)), k);
    }
    this.orders[i] = o;
    return o;
  }

  private draw(ws: readonly number[], idx: readonly number[]): number {
    const tot = idx.reduce((a, i) => a + ws[i]!, 0);
    let u = this.rng.uniform() * tot;
    for (const i of idx) { u -= ws[i]!; if (u < 0) return i; }
    return idx[idx.length - 1]!;
  }

  next(): MixBatch {
    const typeW = this.types.map((t) => this.sources.reduce((a, s, i) => a + (s.type === t ? this.weights[i]! : 0), 0));
    const ti = this.draw(typeW, this.types.map((_, i) => i).filter((i) => typeW[i]! > 0));
    const type = this.types[ti]!;
    const members = this.sources.map((_, i) => i).filter((i) => this.sources[i]!.type === type && this.weights[i]! > 0);
    const items: MixItem[] = [];
    for (let b = 0; b < this.batchSize; b++) {
      const d = this.draw(this.weights, members);
      const c = this.cursors[d]!;
      items.push({ dataset: d, index: this.order(d)[c.pos]! });
      if (++c.pos >= this.epochLength(d)) { c.pos = 0; c.epoch++; this.orders[d] = null; }
    }
    this.step++;
    return { type, items };
  }

  state(): SamplerState {
    return {
      version: 1, seed: this.seed, step: this.step, rng: this.rng.state().map((v) => (Number.isNaN(v) ? -1 : v)),
      cursors: this.sources.map((s, i) => ({ name: s.name, epoch: this.cursors[i]!.epoch, pos: this.cursors[i]!.pos })),
    };
  }

  setState(s: SamplerState): void {
    if (s === null || typeof s !== 'object' || s.version !== 1) throw new Error('MixSampler.setState: not a version-1 sampler state');
    if (s.seed !== this.seed) throw new Error(`MixSampler.setState: state has seed ${s.seed}, this sampler ${this.seed}`);
    if (!Array.isArray(s.cursors) || s.cursors.length !== this.sources.length || s.cursors.some((c, i) => c.name !== this.sources[i]!.name)) {
      throw new Error(`MixSampler.setState: state lists datasets [${(s.cursors ?? []).map((c) => c.name).join(', ')}], this sampler [${this.sources.map((x) => x.name).join(', ')}]`);
    }
    s.cursors.forEach((c, i) => {
      if (!Number.isInteger(c.epoch) || c.epoch < 0 || !Number.isInteger(c.pos) || c.pos < 0 || c.pos >= this.epochLength(i)) throw new Error(`MixSampler.setState: bad cursor for '${c.name}'`);
    });
    if (!Array.isArray(s.rng) || s.rng.length !== 5) throw new Error('MixSampler.setState: rng must hold 5 numbers');
    // A spare normal is never used by the sampler (-1 = none).
    this.rng.setState([s.rng[0]!, s.rng[1]!, s.rng[2]!, s.rng[3]!, NaN]);
    this.step = s.step;
    this.cursors = s.cursors.map((c) => ({ epoch: c.epoch, pos: c.pos }));
    this.orders = this.sources.map(() => null);
  }
}
