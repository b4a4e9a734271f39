// InternLM-XComposer v1 (SPEC §14): EVA ViT-g at 224 (Chimera's CLIP-layout ViT stands in; its
// last hidden state, without post_layernorm) -> ln_vision -> the "perceive sampler", a BLIP-2-style
// Q-Former acting on the learned queries only (no text FFNs, no word/position embeddings) ->
// internlm_proj Linear(768 -> D) -> [flag_image_start ; Q tokens ; flag_image_end]. The flags are
// zero vectors that never train (requires_grad=False in the reference), kept as checkpoint keys.
// Keys follow the reference modeling file: visual_encoder.*, ln_vision, query_tokens, Qformer.*,
// internlm_proj, flag_image_start, flag_image_end.
//
// Dims: V images, S ViT tokens, E ViT width, Q queries, Dq Q-Former width, D LLM width.

import * as F from '../../engine/ops/index.ts';
import type { Rng } from '../../engine/rng.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { constInit } from '../../nn/init.ts';
import { initLinear, linear, zeroLinear, type Linear } from '../../nn/linear.ts';
import { layerNormParams, normalOrZero, type LayerNormParams } from '../../nn/vit.ts';
import type { RgbImage } from '../../vision/preprocess.ts';
import { singleResize, type ViewGeom } from '../../vision/views.ts';
import * as qf from '../blip2-qformer.ts';
import * as clip from '../clip-vision.ts';
import type { ConfigReader } from '../config.ts';
import type { LlamaConfig } from '../llama.ts';
import { EVA_G, prepareSquare, splitRows, stackPixels, TINY_EVA } from './blip2.ts';
import { runFrozen } from './trainable.ts';
import type { Detail, EncodeContext, PreparedImage, PresetDef, SystemInfo, VlmSystem } from './system.ts';
import { registerTemplate, type Segment } from './templates.ts';
import { llamaConfig, parseClipTower, tinyLlama, type ClipTower } from './towers.ts';

export interface XComposerConfig {
  vision: ClipTower;
  qformer: qf.Blip2QFormerConfig;
  numQueries: number;
}

export interface XComposerParams {
  visual_encoder: clip.ClipVisionParams;
  ln_vision: LayerNormParams; // [E]
  query_tokens: Tensor; // [1, Q, Dq]
  Qformer: qf.Blip2QFormerParams;
  internlm_proj: Linear; // [D, Dq]
  flag_image_start: Tensor; // [1, 1, D], zeros, never trained
  flag_image_end: Tensor; // [1, 1, D], zeros, never trained
}

function parseConfig(r: ConfigReader, llm: LlamaConfig): XComposerConfig {
  void llm;
  const vision = parseClipTower(r, 'visual_encoder');
  const src = `${r.source}:qformer_config`;
  r.sub('qformer_config');
  const qformer = qf.parseConfig({ encoder_hidden_size: vision.cfg.hiddenSize, ...(r.raw('qformer_config') as Record<string, unknown>) }, src);
  if (qformer.useQformerTextInput) throw new Error(`${src}: the perceive sampler has no text side; use_qformer_text_input must be false`);
  if (qformer.encoderHiddenSize !== vision.cfg.hiddenSize) throw new Error(`${src}: encoder_hidden_size ${qformer.encoderHiddenSize} must equal visual_encoder.hidden_size ${vision.cfg.hiddenSize}`);
  return { vision, qformer, numQueries: r.int('num_query_token', 64) };
}

const SAMPLER = ['query_tokens', 'Qformer', 'ln_vision', 'internlm_proj'];

function info(): SystemInfo {
  return {
    template: 'internlm_xcomposer',
    layout: 'placeholder',
    keepPlaceholder: false,
    // Unverified (SPEC §14, §18): the ViT is frozen (finetune.py fix_vit); 'pretrain' trains the
    // perceive sampler, projection and LLM; 'projector' the sampler and projection only.
    stages: { pretrain: [...SAMPLER, 'language_model'], projector: SAMPLER },
    maxImages: 4,
    stopStrings: ['<TOKENS_UNUSED_1>', '<eoa>'],
    sampling: { temperature: 1, topP: 0.8 },
  };
}

function init(cfg: XComposerConfig, llm: LlamaConfig, rng: Rng | null): XComposerParams {
  const E = cfg.vision.cfg.hiddenSize, Dq = cfg.qformer.hiddenSize, D = llm.hiddenSize;
  const flag = (): Tensor => { const t = constInit([1, 1, D], 0); t.requiresGrad = false; return t; };
  return {
    visual_encoder: clip.init(cfg.vision.cfg, rng),
    ln_vision: layerNormParams(E, rng),
    query_tokens: normalOrZero([1, cfg.numQueries, Dq], cfg.qformer.initializerRange, rng),
    Qformer: qf.init(cfg.qformer, rng),
    internlm_proj: rng ? initLinear(Dq, D, rng) : zeroLinear(Dq, D),
    flag_image_start: flag(),
    flag_image_end: flag(),
  };
}

function plan(cfg: XComposerConfig, W: number, H: number): { views: ViewGeom[]; positions: number } {
  return { views: singleResize(W, H, cfg.vision.cfg.imageSize), positions: cfg.numQueries + 2 };
}

function prepare(cfg: XComposerConfig, image: RgbImage, detail: Detail): PreparedImage {
  return prepareSquare(image, cfg.vision.cfg.imageSize, detail, cfg.numQueries + 2);
}

function encode(cfg: XComposerConfig, params: XComposerParams, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[] {
  const D = ctx.llm.hiddenSize, V = images.length;
  const img = runFrozen(params.visual_encoder, () => clip.forwardClipVision(params.visual_encoder, cfg.vision.cfg, stackPixels(images)).lastHiddenState); // [V, S, E]
  const q = runFrozen({ a: params.ln_vision, b: params.query_tokens, c: params.Qformer }, () => {
    const kv = F.layerNorm(img, params.ln_vision.weight, params.ln_vision.bias, 1e-5);
    return qf.forwardQFormerWithQueries(params.Qformer, cfg.qformer, params.query_tokens, kv).lastHiddenState; // [V, Q, Dq]
  });
  const tokens = linear(params.internlm_proj, q); // [V, Q, D]
  const out = F.concat([F.expand(params.flag_image_start, [V, 1, D]), tokens, F.expand(params.flag_image_end, [V, 1, D])], 1); // [V, Q + 2, D]
  return splitRows(out, V);
}

export const system: VlmSystem<XComposerConfig, XComposerParams> = { name: 'internlm-xcomposer', parseConfig, info, init, plan, prepare, encode };

// ---- template (SPEC §14) -------------------------------------------------------------------------

/** meta_instruction + " <|User|>:" + [image] + text + "\n<TOKENS_UNUSED_0> <|Bot|>:" + answer + "<TOKENS_UNUSED_1>\n". */
registerTemplate({
  name: 'internlm_xcomposer',
  stopStrings: ['<TOKENS_UNUSED_1>'],
  render(turns, generation) {
    const sys = turns[0]?.role === 'system' ? turns[0].parts.map((p) => ('text' in p ? p.text : '')).join('') : '';
    const rest = turns[0]?.role === 'system' ? turns.slice(1) : turns;
    if (rest.length === 0) throw new Error('internlm_xcomposer template: no user turn');
    rest.forEach((t, i) => {
      if (t.role !== (i % 2 === 0 ? 'user' : 'assistant')) throw new Error(`internlm_xcomposer template: turn ${i + 1} is '${t.role}'; user and assistant turns alternate`);
    });
    if (generation && rest[rest.length - 1]!.role !== 'user') throw new Error('internlm_xcomposer template: the last turn must be the user\'s to generate a reply');
    const out: Segment[] = [{ special: 'bos' }, { text: sys }];
    for (const t of rest) {
      if (t.role === 'user') {
        out.push({ text: ' <|User|>:' });
        for (const p of t.parts) out.push('image' in p ? { image: p.image } : { text: p.text });
        out.push({ text: '\n<TOKENS_UNUSED_0> <|Bot|>:' });
      } else {
        out.push({ text: t.parts.map((p) => ('text' in p ? p.text : '')).join('') + '<TOKENS_UNUSED_1>', supervised: true }, { text: '\n' });
      }
    }
    return out.filter((s) => !('text' in s) || s.text !== '');
  },
});

// ---- presets -------------------------------------------------------------------------------------

export const presets: PresetDef[] = [
  {
    // EVA ViT-g at 224, BERT-base sampler with 64 queries (paper, unverified), InternLM-7B's dims as a
    // LLaMA-shaped decoder (4096 wide, 32 layers, ffn 11008, vocab 103168; not in SPEC).
    name: 'internlm-xcomposer', system: 'internlm-xcomposer',
    real: () => ({ system: 'internlm-xcomposer', vision_config: {
      visual_encoder: EVA_G(224), num_query_token: 64,
      qformer_config: { model_type: 'blip_2_qformer', hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, cross_attention_frequency: 2 } },
    text_config: llamaConfig({ dim: 4096, layers: 32, heads: 32, ffn: 11008, vocab: 103168, maxPos: 2048 }) }),
    tiny: () => ({ system: 'internlm-xcomposer', vision_config: {
      visual_encoder: TINY_EVA(56), num_query_token: 8,
      qformer_config: { model_type: 'blip_2_qformer', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, cross_attention_frequency: 2 } },
    text_config: tinyLlama() }),
  },
];
