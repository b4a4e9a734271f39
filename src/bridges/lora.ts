// Low-rank adapter (LoRA) as Monkey attaches it to its ViT (SPEC §6.2): delta(x) = scale ·
// B(A(x)), A Kaiming-uniform, B zeros, scale a learned scalar initialised to 1. With B = 0 the
// adapter adds exactly nothing, so an untrained LoRA leaves the base layer unchanged. Dropout
// (0.05 in Monkey) is a training-time regulariser and is not applied here.
// Param tree: { A.weight [r, In], B.weight [Out, r], scale [1] }.
//
// Dims: In input width, Out output width, r rank.

import * as F from '../engine/ops/index.ts';
import type { Rng } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import { constInit, uniformInit } from '../nn/init.ts';

export interface LoraParams {
  A: { weight: Tensor }; // [r, In]
  B: { weight: Tensor }; // [Out, r]
  scale: Tensor; // [1]
}

/** A: nn.Linear default (Kaiming-uniform a=sqrt(5): U(±1/sqrt(In))); B: zeros; scale: 1. rng null: every leaf zero (to be loaded). */
export function initLora(inF: number, outF: number, rank: number, rng: Rng | null): LoraParams {
  for (const [k, v] of [['in', inF], ['out', outF], ['rank', rank]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`lora: ${k} must be a positive integer, got ${v}`);
  }
  return {
    A: { weight: rng ? uniformInit([rank, inF], 1 / Math.sqrt(inF), rng) : constInit([rank, inF], 0) },
    B: { weight: constInit([outF, rank], 0) },
    scale: constInit([1], rng ? 1 : 0),
  };
}

/** x [..., In] -> scale · B(A(x)) [..., Out]. */
export function lora(p: LoraParams, x: Tensor): Tensor {
  const In = p.A.weight.shape[1]!;
  if (x.shape[x.ndim - 1] !== In) throw new Error(`lora: input ${x.describe()} must end in ${In}`);
  if (p.B.weight.shape[1] !== p.A.weight.shape[0]) throw new Error(`lora: rank mismatch, A ${p.A.weight.describe()} vs B ${p.B.weight.describe()}`);
  return F.mul(F.linear(F.linear(x, p.A.weight), p.B.weight), p.scale); // [..., Out]
}

/** base + LoRA, or base alone when p is null. */
export function withLora(base: Tensor, p: LoraParams | null, x: Tensor): Tensor {
  return p === null ? base : F.add(base, lora(p, x));
}
