// `chimera init`: a randomly initialised model folder of a preset (config.json, model.safetensors,
// tokenizer.json) that every command loads. The tokenizer is a byte-level BPE trained on a small
// built-in text, with the special tokens the templates need; the demo and training replace it with
// one trained on their corpus.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../engine/rng.ts';
import { untracked, type Tensor } from '../../engine/tensor.ts';
import { flatten } from '../../engine/tree.ts';
import { saveTokenizerFiles, trainByteLevelBpe, type TrainedTokenizer } from '../../io/bpe-trainer.ts';
import { saveModel } from '../load.ts';
import { family, parseVlmConfig, type VlmParams } from './model.ts';
import { presetConfig } from './systems.ts';
import { SPHINX_SYSTEM, VICUNA_SYSTEM } from './templates.ts';

/** Special tokens of Chimera's own tokenizers, ids 0..4 in this order. */
export const SPECIAL_TOKENS = ['<pad>', '<s>', '</s>', '<unk>', '<image>'] as const;
export const IMAGE_TOKEN_ID = 4;

const BUILTIN_TEXT = [
  SPHINX_SYSTEM, VICUNA_SYSTEM,
  'Answer the question using a single word or phrase.',
  'Please provide the bounding box coordinate of the region this sentence describes:',
  'Provide a one-sentence caption for the provided image.',
  'Generate a detailed description about the image.',
  'Describe the image concisely. Include the bounding box for each mentioned object.',
  'Detect all objects shown in the image. Detect the key points of the person in the region.',
  'Please detect all texts and provide their bounding box coordinate.',
  'What is in the image? What colour is it? How many are there? Is there a circle? yes no',
  'red green blue yellow white black orange purple grey circle square triangle shirt shoe bag dress coat sandal sneaker boot trouser pullover',
  'a photo of the left right top bottom centre small large one two three four five six seven eight nine ten',
  '0123456789 [0.12, 0.34, 0.56, 0.78] <p>object</p> ### Human: Assistant: USER: ASSISTANT:',
];

export function builtinTokenizer(vocabSize: number, corpus: Iterable<string> = BUILTIN_TEXT): TrainedTokenizer {
  return trainByteLevelBpe(corpus, {
    vocabSize, specialTokens: [...SPECIAL_TOKENS], minFrequency: 1,
    bosToken: '<s>', eosToken: '</s>', padToken: '<pad>', unkToken: '<unk>', addBosToken: false,
  });
}

export interface CreateOptions {
  seed?: number;
  /** Write config.json and the tokenizer only (real-size presets are tens of gigabytes). */
  configOnly?: boolean;
  /** Write weights above MAX_INIT_BYTES anyway. */
  force?: boolean;
}

/** Random weights above this size need `force` (a real-size preset is easy to ask for by mistake). */
export const MAX_INIT_BYTES = 2 * 1024 ** 3;

/** Parameters of the language model alone (a lower bound for the whole model). */
export function llmParameterCount(text: Record<string, unknown>): number {
  const n = (k: string, d = 0): number => (typeof text[k] === 'number' ? (text[k] as number) : d);
  const D = n('hidden_size'), L = n('num_hidden_layers'), H = n('num_attention_heads', 1), Hkv = n('num_key_value_heads', H), I = n('intermediate_size'), V = n('vocab_size');
  const dh = n('head_dim', D / H);
  return V * D * (text['tie_word_embeddings'] ? 1 : 2) + L * (D * dh * (2 * H + 2 * Hkv) + 3 * D * I + 2 * D) + D;
}

export interface Created {
  dir: string;
  preset: string;
  parameters: number;
  bytes: number;
}

/** Writes a preset's model folder; returns its parameter count. */
export function createPreset(spec: string, dir: string, opts: CreateOptions = {}): Created {
  const pc = presetConfig(spec);
  const tok = builtinTokenizer(Math.min(512, Number((pc.text_config as { vocab_size: number }).vocab_size)));
  const configJson: Record<string, unknown> = {
    model_type: 'chimera_vlm', preset: pc.preset, system: pc.system, image_token: '<image>', image_token_id: IMAGE_TOKEN_ID,
    vision_config: pc.vision_config, text_config: pc.text_config,
  };
  const cfg = parseVlmConfig(configJson, `preset ${spec}`);
  const lower = llmParameterCount(pc.text_config);
  if (!opts.configOnly && !opts.force && lower * 4 > MAX_INIT_BYTES) {
    throw new Error(`preset '${spec}' at real size has over ${(lower / 1e9).toFixed(1)}B parameters (${(lower * 4 / 1024 ** 3).toFixed(0)}+ GiB of f32 weights); pass --force to write them, --config-only for config.json alone, or use '${pc.preset}:tiny'`);
  }
  fs.mkdirSync(dir, { recursive: true });
  saveTokenizerFiles(dir, tok);
  if (opts.configOnly) {
    fs.writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
    return { dir, preset: spec, parameters: 0, bytes: 0 };
  }
  const params = untracked(() => family.init(cfg, new Rng(opts.seed ?? 0))) as VlmParams;
  saveModel(dir, family, configJson, params);
  let n = 0;
  for (const t of flatten<Tensor>(params).values()) { n += t.size; t.dispose(); }
  return { dir, preset: spec, parameters: n, bytes: fs.statSync(path.join(dir, 'model.safetensors')).size };
}
