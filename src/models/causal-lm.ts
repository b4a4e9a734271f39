// The decoder interface generation and serving use; every language model family implements it.

import type { Tensor } from '../engine/tensor.ts';

/** Per-layer key/value memory of a decoder, sized for `capacity` positions per row. */
export interface KVCache {
  /** Positions already stored (same for every row; padded rows carry masked positions). */
  readonly length: number;
  readonly capacity: number;
  readonly batch: number;
  dispose(): void;
}

export interface ForwardOptions {
  /** [B, length + T] bool, false at padded positions (left padding); null when nothing is padded. */
  attentionMask?: Tensor | null;
  /** Return logits for the last position only: [B, 1, V]. */
  lastOnly?: boolean;
}

export interface CausalLM {
  readonly vocabSize: number;
  /** Longest sequence the model accepts (max_position_embeddings). */
  readonly maxPositions: number;
  newCache(batch: number, capacity: number): KVCache;
  /**
   * Runs i32 tokens [B, T] after the cache's contents and appends their keys/values; returns
   * logits [B, T, V] ([B, 1, V] with lastOnly). Positions follow the attention mask (HF:
   * cumsum(mask) - 1) so left-padded rows get the same positions as unpadded ones.
   */
  forward(tokens: Tensor, cache: KVCache, opts?: ForwardOptions): Tensor;
}
