// Test models for chat, run and serve:
// - makeTinyLlamaDir(): a real model folder (random-init llama + a byte-level BPE tokenizer.json
//   trained here, ChatML template) that loadChatModel reads like any Hugging Face folder;
// - ScriptedChatModel: a ChatModel whose "LLM" emits a fixed reply token by token (optionally
//   slowly), takes images, and records what prepare() received, so answers, boxes, images and
//   timing-sensitive paths (queue, disconnect, shutdown) can be asserted exactly.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../../src/engine/rng.ts';
import { fromData, type Tensor } from '../../src/engine/tensor.ts';
import { trainByteLevelBpe, saveTokenizerFiles, type TrainedTokenizer } from '../../src/io/bpe-trainer.ts';
import { builtinChatTemplates } from '../../src/io/chat-template.ts';
import { tokenizerFromJson, type Tokenizer } from '../../src/io/tokenizer.ts';
import type { CausalLM, ForwardOptions, KVCache } from '../../src/models/causal-lm.ts';
import { turnText, type ChatImage, type ChatModel, type ChatTurn, type Detail, type ImagePlan, type PreparedChat, type SamplingDefaults } from '../../src/models/chat-model.ts';
import { initLlama, parseLlamaConfig } from '../../src/models/llama.ts';
import { saveModel } from '../../src/models/load.ts';
import { singlePadded, sphinxViews } from '../../src/vision/views.ts';

const CORPUS = [
  'The cat sits on the mat. A dog runs in the park. The quick brown fox jumps over the lazy dog.',
  'Hello, how are you? I am fine, thank you. What is in the image? There is a cat at [0.12, 0.25, 0.50, 0.75].',
  'Describe the picture. The box is [0.1, 0.2, 0.3, 0.4] and the other box is [0.55, 0.60, 0.95, 0.90].',
  'numbers 0123456789 0.5 0.25 0.75 1.0 [ ] , . ; : ! ? ( ) - user assistant system image',
];

let trained: TrainedTokenizer | null = null;

/** The shared tiny tokenizer: specials <|endoftext|> (pad), <|im_start|>, <|im_end|> (eos), ChatML template. */
export function tinyTokenizerFiles(): TrainedTokenizer {
  trained ??= trainByteLevelBpe(CORPUS.flatMap((c) => [c, c, c]), {
    vocabSize: 420, specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    padToken: '<|endoftext|>', eosToken: '<|im_end|>', chatTemplate: builtinChatTemplates.chatml, minFrequency: 2,
  });
  return trained;
}

export function tinyTokenizer(): Tokenizer {
  const t = tinyTokenizerFiles();
  return tokenizerFromJson(t.tokenizerJson, t.tokenizerConfig);
}

export function tmpDir(prefix = 'chimera-serve-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TinyLlamaOptions {
  /** Context length (max_position_embeddings); default 256. */
  maxPositions?: number;
  seed?: number;
  /** Keep the eos token (default); false: no eos anywhere, so generation always runs to max_tokens. */
  eos?: boolean;
  hidden?: number;
  layers?: number;
}

/** Writes a random-init llama folder (config.json, model.safetensors, tokenizer files) and returns its path. */
export function makeTinyLlamaDir(dir = path.join(tmpDir(), 'tiny-llama'), o: TinyLlamaOptions = {}): string {
  const tok = tinyTokenizerFiles();
  const eos = o.eos ?? true;
  const files: TrainedTokenizer = eos ? tok : {
    ...tok, tokenizerConfig: Object.fromEntries(Object.entries(tok.tokenizerConfig).filter(([k]) => k !== 'eos_token')),
  };
  saveTokenizerFiles(dir, files);
  const hidden = o.hidden ?? 32;
  const cfgJson: Record<string, unknown> = {
    model_type: 'llama', vocab_size: tok.vocabSize, hidden_size: hidden, intermediate_size: hidden * 2,
    num_hidden_layers: o.layers ?? 2, num_attention_heads: 4, num_key_value_heads: 2,
    max_position_embeddings: o.maxPositions ?? 256, rms_norm_eps: 1e-6, tie_word_embeddings: false,
    initializer_range: 0.5, pad_token_id: 0, ...(eos ? { eos_token_id: 2 } : {}),
  };
  const params = initLlama(parseLlamaConfig(cfgJson), new Rng(o.seed ?? 1));
  saveModel(dir, 'llama', cfgJson, params);
  return dir;
}

// ---- scripted model ------------------------------------------------------------------------------

class ScriptCache implements KVCache {
  length = 0;
  readonly batch: number;
  readonly capacity: number;
  constructor(batch: number, capacity: number) {
    this.batch = batch;
    this.capacity = capacity;
  }
  dispose(): void {}
}

/** Emits script[k] as the k-th generated token (one-hot logits), looping when it runs out. */
class ScriptLM implements CausalLM {
  readonly vocabSize: number;
  readonly maxPositions: number;
  private readonly script: readonly number[];
  private readonly promptLength: number;
  private readonly delayMs: number;
  private readonly onStep: () => void;
  constructor(vocab: number, maxPositions: number, script: readonly number[], promptLength: number, delayMs: number, onStep: () => void) {
    this.vocabSize = vocab;
    this.maxPositions = maxPositions;
    this.script = script;
    this.promptLength = promptLength;
    this.delayMs = delayMs;
    this.onStep = onStep;
  }
  newCache(batch: number, capacity: number): KVCache {
    return new ScriptCache(batch, capacity);
  }
  forward(tokens: Tensor, kv: KVCache, _opts?: ForwardOptions): Tensor {
    const cache = kv as ScriptCache;
    const [B, T] = tokens.shape as [number, number];
    cache.length += T;
    if (this.delayMs > 0) {
      const until = performance.now() + this.delayMs;
      while (performance.now() < until) { /* a model step's worth of compute */ }
    }
    this.onStep();
    const k = cache.length - this.promptLength;
    const id = this.script[k % this.script.length]!;
    const out = new Float32Array(B * this.vocabSize);
    for (let b = 0; b < B; b++) out[b * this.vocabSize + id] = 10;
    return fromData(out, [B, 1, this.vocabSize]); // [B, 1, V]
  }
}

export interface ScriptedOptions {
  /** The reply, or a function of what prepare() received. */
  reply?: string | ((turns: readonly ChatTurn[], images: readonly ChatImage[]) => string);
  /** End the reply with eos (default true); false loops the reply until max_tokens. */
  stop?: boolean;
  /** Busy-wait per model call. */
  delayMs?: number;
  maxImages?: number;
  maxPositions?: number;
  id?: string;
}

export interface PrepareRecord {
  turns: ChatTurn[];
  images: { width: number; height: number; detail: Detail | undefined; pixel0: number[] }[];
}

export class ScriptedChatModel implements ChatModel {
  readonly id: string;
  readonly preset = 'scripted';
  readonly tokenizer: Tokenizer;
  readonly maxPositions: number;
  readonly maxImages: number;
  readonly stopTokenIds: readonly number[];
  readonly stopStrings: readonly string[] = [];
  readonly defaults: SamplingDefaults = { temperature: 0, topP: 1, maxNewTokens: 64 };
  readonly prepared: PrepareRecord[] = [];
  /** Model calls made (prefill + decode steps) over all requests. */
  steps = 0;
  live = 0;
  private readonly o: ScriptedOptions;

  constructor(o: ScriptedOptions = {}) {
    this.o = o;
    this.id = o.id ?? 'scripted-tiny';
    this.tokenizer = tinyTokenizer();
    this.maxPositions = o.maxPositions ?? 512;
    this.maxImages = o.maxImages ?? 4;
    this.stopTokenIds = [this.tokenizer.eosId!];
  }

  planImage(width: number, height: number, detail: Detail): ImagePlan {
    const views = detail === 'low' ? singlePadded(width, height, 224) : sphinxViews(width, height, 2, 224);
    return { views, positions: views.length * 4 };
  }

  prepare(turns: readonly ChatTurn[], images: readonly ChatImage[]): PreparedChat {
    const text = turns.map((t) => `${t.role}: ${turnText(t)}\n`).join('') + 'assistant:';
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    const infos = images.map((im) => {
      const plan = this.planImage(im.image.width, im.image.height, im.detail ?? 'high');
      for (let i = 0; i < plan.positions; i++) ids.push(0);
      return { ...plan, size: [im.image.width, im.image.height] as [number, number] };
    });
    if (ids.length > this.maxPositions) throw new Error(`prompt of ${ids.length} tokens exceeds the context length ${this.maxPositions}`);
    this.prepared.push({
      turns: turns.map((t) => ({ ...t })),
      images: images.map((im) => ({ width: im.image.width, height: im.image.height, detail: im.detail, pixel0: [...im.image.data.subarray(0, 3)] })),
    });
    const reply = typeof this.o.reply === 'function' ? this.o.reply(turns, images) : this.o.reply ?? 'Hello there.';
    const script = this.tokenizer.encode(reply, { addSpecialTokens: false });
    if (this.o.stop ?? true) script.push(this.tokenizer.eosId!);
    this.live++;
    let disposed = false;
    return {
      ids, images: infos,
      lm: new ScriptLM(this.tokenizer.vocabSize, this.maxPositions, script, ids.length, this.o.delayMs ?? 0, () => { this.steps++; }),
      dispose: () => {
        if (!disposed) this.live--;
        disposed = true;
      },
    };
  }

  dispose(): void {}
}

/** A PNG (RGB, solid colour or gradient) made with sharp, as bytes. */
export async function makePng(width: number, height: number, rgb: [number, number, number] = [200, 30, 40]): Promise<Buffer> {
  const sharp = (await import('sharp')).default;
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
}

export const dataUrl = (bytes: Buffer, type = 'image/png'): string => `data:${type};base64,${bytes.toString('base64')}`;
