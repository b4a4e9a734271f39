// Key/value memory of a decoder: per layer, keys and values [B, Hkv, capacity, Dh] allocated
// once; each forward step writes its new positions in place (no reallocation, no copy of the
// history) and attention reads the filled prefix straight from these buffers (nn/attention.ts).
// The cache also remembers which slots hold real tokens (left padding), so decode steps after a
// padded prefill need no mask from the caller.
//
// Dims: L layers, B batch rows, Hkv key/value heads, C capacity (slots per row), Dh head dim.

import * as F from '../engine/ops/index.ts';
import { empty, keep, type Tensor } from '../engine/tensor.ts';

export class KVCache {
  readonly layers: number;
  readonly batch: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly capacity: number;
  /** Per layer [B, Hkv, C, Dh]; slots >= length hold garbage. Never part of an autograd graph. */
  readonly keys: Tensor[];
  readonly values: Tensor[];
  /** [B, C]: 1 where a slot holds a real token, 0 for padding. */
  readonly slotMask: Uint8Array;
  private len = 0;
  private padded = false;
  private disposed = false;

  constructor(layers: number, batch: number, kvHeads: number, headDim: number, capacity: number) {
    for (const [k, v] of [['layers', layers], ['batch', batch], ['kvHeads', kvHeads], ['headDim', headDim], ['capacity', capacity]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`KVCache: ${k} must be a positive integer, got ${v}`);
    }
    this.layers = layers;
    this.batch = batch;
    this.kvHeads = kvHeads;
    this.headDim = headDim;
    this.capacity = capacity;
    const shape = [batch, kvHeads, capacity, headDim];
    this.keys = Array.from({ length: layers }, () => keep(empty(shape)));
    this.values = Array.from({ length: layers }, () => keep(empty(shape)));
    this.slotMask = new Uint8Array(batch * capacity);
  }

  /** Slots filled in every row (committed positions). */
  get length(): number {
    return this.len;
  }

  /** True when some committed slot is padding. */
  get hasPadding(): boolean {
    return this.padded;
  }

  private check(): void {
    if (this.disposed) throw new Error('KVCache: used after dispose()');
  }

  /**
   * Starts a step of T new positions: checks capacity and records which new slots are real.
   * `mask` [B, length + T] (1 = real token) replaces the remembered history; null marks the new
   * slots real. Returns whether any slot in [0, length + T) is padding.
   */
  begin(T: number, mask: Uint8Array | null): boolean {
    this.check();
    const n = this.len + T, C = this.capacity, B = this.batch;
    if (n > C) throw new Error(`KVCache: ${this.len} cached + ${T} new positions exceed the capacity of ${C}`);
    if (mask !== null) {
      if (mask.length !== B * n) throw new Error(`KVCache: attention mask has ${mask.length} entries; expected [${B}, ${n}] (batch, cached + new positions)`);
      let pad = false;
      for (let b = 0; b < B; b++) {
        const row = mask.subarray(b * n, b * n + n);
        for (let j = 0; j < n; j++) {
          const m = row[j] ? 1 : 0;
          this.slotMask[b * C + j] = m;
          if (m === 0) pad = true;
        }
      }
      return pad;
    }
    for (let b = 0; b < B; b++) this.slotMask.fill(1, b * C + this.len, b * C + n);
    return this.padded;
  }

  /**
   * Writes layer's new keys/values k, v [B, Hkv, T, Dh] (any strides) into slots
   * [length, length + T). Call between begin() and commit().
   */
  write(layer: number, k: Tensor, v: Tensor): void {
    this.check();
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.layers) throw new Error(`KVCache: layer ${layer} out of range [0, ${this.layers})`);
    this.writeOne(this.keys[layer]!, k, 'keys');
    this.writeOne(this.values[layer]!, v, 'values');
  }

  private writeOne(dst: Tensor, src: Tensor, what: string): void {
    const [B, H, T, D] = src.shape as [number, number, number, number];
    if (src.ndim !== 4 || B !== this.batch || H !== this.kvHeads || D !== this.headDim || src.dtype !== 'f32') {
      throw new Error(`KVCache: ${what} ${src.describe()} must be f32 [${this.batch}, ${this.kvHeads}, T, ${this.headDim}]`);
    }
    if (this.len + T > this.capacity) throw new Error(`KVCache: ${this.len} cached + ${T} new positions exceed the capacity of ${this.capacity}`);
    const s = src.buffer() as Float32Array, d = dst.data;
    const [sb, sh, st, sd] = src.strides as [number, number, number, number];
    const C = this.capacity;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        let o = ((b * H + h) * C + this.len) * D;
        for (let t = 0; t < T; t++, o += D) {
          const so = src.offset + b * sb + h * sh + t * st;
          if (sd === 1) d.set(s.subarray(so, so + D), o);
          else for (let i = 0; i < D; i++) d[o + i] = s[so + i * sd]!;
        }
      }
    }
  }

  /** Ends a step: the T positions written to every layer become part of the history. */
  commit(T: number): void {
    this.check();
    const n = this.len + T;
    if (!Number.isInteger(T) || T < 0 || n > this.capacity) throw new Error(`KVCache: cannot commit ${T} positions after ${this.len} (capacity ${this.capacity})`);
    this.len = n;
    this.padded = false;
    for (let b = 0; b < this.batch && !this.padded; b++) {
      for (let j = 0; j < n; j++) if (this.slotMask[b * this.capacity + j] === 0) { this.padded = true; break; }
    }
  }

  /** Forgets everything after the first n positions (n <= length). */
  truncate(n: number): void {
    this.check();
    if (!Number.isInteger(n) || n < 0 || n > this.len) throw new Error(`KVCache: cannot truncate to ${n} (length ${this.len})`);
    this.len = n;
    this.commit(0);
  }

  /** Empties the cache for reuse (buffers kept). */
  reset(): void {
    this.truncate(0);
  }

  /** The filled part of one layer as strided views [B, Hkv, n, Dh] (n defaults to length). */
  view(layer: number, n = this.len): { k: Tensor; v: Tensor } {
    this.check();
    if (!Number.isInteger(n) || n < 0 || n > this.capacity) throw new Error(`KVCache: view of ${n} slots (capacity ${this.capacity})`);
    const k = this.keys[layer], v = this.values[layer];
    if (k === undefined || v === undefined) throw new Error(`KVCache: layer ${layer} out of range [0, ${this.layers})`);
    return { k: F.slice(k, 2, 0, n), v: F.slice(v, 2, 0, n) };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [...this.keys, ...this.values]) t.dispose();
  }
}
