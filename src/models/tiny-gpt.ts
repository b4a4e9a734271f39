// A tiny pre-LayerNorm causal transformer (GPT-style, learned positions, tied head) and a
// two-layer MLP: the smallest models that exercise every engine path end to end. Used by the
// engine demo and the training tests; the real model families live beside this file.
//
// Dims: B batch, T tokens, D width, H heads, Dh = D / H, V vocabulary.

import * as F from '../engine/ops/index.ts';
import { Rng } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import { initLayerNorm, layerNorm, type LayerNorm } from '../nn/norm.ts';
import { initLinear, linear, type Linear } from '../nn/linear.ts';
import { normalInit } from '../nn/init.ts';

export interface TinyGptConfig {
  vocab: number;
  width: number;
  heads: number;
  layers: number;
  context: number;
}

export interface TinyGptBlock {
  ln_1: LayerNorm;
  attn: { c_attn: Linear; c_proj: Linear }; // fused QKV [3D, D], output [D, D]
  ln_2: LayerNorm;
  mlp: { c_fc: Linear; c_proj: Linear }; // [4D, D], [D, 4D]
}

export interface TinyGpt {
  wte: Tensor; // [V, D]
  wpe: Tensor; // [context, D]
  h: TinyGptBlock[];
  ln_f: LayerNorm;
}

export function initTinyGpt(c: TinyGptConfig, seed: number): TinyGpt {
  if (c.width % c.heads !== 0) throw new Error(`tiny-gpt: width ${c.width} is not divisible by heads ${c.heads}`);
  const rng = new Rng(seed);
  const D = c.width;
  return {
    wte: normalInit([c.vocab, D], 0.02, rng),
    wpe: normalInit([c.context, D], 0.01, rng),
    h: Array.from({ length: c.layers }, () => ({
      ln_1: initLayerNorm(D),
      attn: { c_attn: initLinear(D, 3 * D, rng), c_proj: initLinear(D, D, rng) },
      ln_2: initLayerNorm(D),
      mlp: { c_fc: initLinear(D, 4 * D, rng), c_proj: initLinear(4 * D, D, rng) },
    })),
    ln_f: initLayerNorm(D),
  };
}

function block(p: TinyGptBlock, x: Tensor, H: number): Tensor {
  const [B, T, D] = x.shape as [number, number, number];
  const Dh = D / H;
  const a = layerNorm(p.ln_1, x);
  const qkv = linear(p.attn.c_attn, a); // [B, T, 3D]
  const r = F.reshape(qkv, [B, T, 3, H, Dh]);
  const qkvh = F.permute(r, [2, 0, 3, 1, 4]); // [3, B, H, T, Dh]
  const [q, k, v] = F.split(qkvh, 1, 0).map((t) => F.squeeze(t, 0)); // [B, H, T, Dh]
  const o = F.attention(q!, k!, v!, { causal: true }); // [B, H, T, Dh]
  const om = F.reshape(F.transpose(o, 1, 2), [B, T, D]);
  const x1 = F.add(x, linear(p.attn.c_proj, om));
  const m = linear(p.mlp.c_proj, F.gelu(linear(p.mlp.c_fc, layerNorm(p.ln_2, x1))));
  return F.add(x1, m);
}

/** Logits [B, T, V] for i32 tokens [B, T]. Run inside tidy(): intermediates are not disposed here. */
export function tinyGptForward(p: TinyGpt, c: TinyGptConfig, tokens: Tensor): Tensor {
  const [, T] = tokens.shape as [number, number];
  if (T > c.context) throw new Error(`tiny-gpt: ${T} tokens exceed the context of ${c.context}`);
  const pos = F.slice(p.wpe, 0, 0, T); // [T, D]
  let x = F.add(F.embedding(p.wte, tokens), pos); // [B, T, D]
  for (const b of p.h) x = block(b, x, c.heads);
  return F.matmul(layerNorm(p.ln_f, x), F.transpose(p.wte)); // tied head: [B, T, V]
}

export interface TinyMlp {
  fc1: Linear;
  fc2: Linear;
}

export function initTinyMlp(inF: number, hidden: number, outF: number, seed: number): TinyMlp {
  const rng = new Rng(seed);
  return { fc1: initLinear(inF, hidden, rng), fc2: initLinear(hidden, outF, rng) };
}

export function tinyMlpForward(p: TinyMlp, x: Tensor): Tensor {
  return linear(p.fc2, F.silu(linear(p.fc1, x)));
}
