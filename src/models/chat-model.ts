// The interface chat, run, serve, eval and the demo use: a loaded model folder that turns
// conversations (text and images) into prompts for `generate`. A text-only llama folder and a
// Chimera multimodal folder (model_type "chimera_vlm") both load through `loadChatModel`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { flatten } from '../engine/tree.ts';
import type { Tensor } from '../engine/tensor.ts';
import { builtinChatTemplates, ChatTemplate } from '../io/chat-template.ts';
import { loadTokenizer, type Tokenizer } from '../io/tokenizer.ts';
import type { RgbImage } from '../vision/preprocess.ts';
import type { ViewGeom } from '../vision/views.ts';
import type { CausalLM } from './causal-lm.ts';
import { LlamaModel, type LlamaConfig, type LlamaParams } from './llama.ts';
import { loadModel, readConfigJson } from './load.ts';

/** 'low': the global view only; 'high': the preset's tiling (OpenAI `detail`; 'auto' maps to 'high'). */
export type Detail = 'low' | 'high';

export interface ChatImage {
  image: RgbImage;
  detail?: Detail;
}

/** Content parts of a turn; `image` indexes the `images` array given to `prepare`. */
export type ChatPart = { type: 'text'; text: string } | { type: 'image'; image: number };

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string | ChatPart[];
}

export interface ImagePlan {
  views: ViewGeom[];
  /** LLM positions the image takes (0 for cross-attention bridges). */
  positions: number;
}

export interface PreparedImageInfo extends ImagePlan {
  /** Original [width, height]. */
  size: [number, number];
}

export interface PreparedChat {
  /** Prompt ids as the LLM sees them: every image position holds a placeholder id. */
  readonly ids: number[];
  readonly images: PreparedImageInfo[];
  /** For `generate(lm, [ids], ...)`: its first forward splices the image embeddings in. Batch 1. */
  readonly lm: CausalLM;
  dispose(): void;
}

export interface SamplingDefaults {
  temperature: number;
  topP: number;
  maxNewTokens: number;
}

export interface ChatModel {
  /** Folder name, used as the API model id. */
  readonly id: string;
  /** Preset name for Chimera multimodal folders; null for plain language models. */
  readonly preset: string | null;
  readonly tokenizer: Tokenizer;
  readonly maxPositions: number;
  /** Images one prompt may carry (0 for text-only models). */
  readonly maxImages: number;
  readonly stopTokenIds: readonly number[];
  readonly stopStrings: readonly string[];
  readonly defaults: SamplingDefaults;
  /** Views and positions an image of this size takes (no pixels needed). */
  planImage(width: number, height: number, detail: Detail): ImagePlan;
  /**
   * Renders the conversation with the model's template (ending with the assistant's turn opened)
   * and expands its images. Throws naming the problem when images and references disagree or
   * the prompt exceeds the context.
   */
  prepare(turns: readonly ChatTurn[], images: readonly ChatImage[]): PreparedChat;
  dispose(): void;
}

/** Text of a turn; image parts are refused (text-only models) by the caller. */
export function turnText(turn: ChatTurn): string {
  if (typeof turn.content === 'string') return turn.content;
  return turn.content.map((p) => (p.type === 'text' ? p.text : '')).join('');
}

class TextChatModel implements ChatModel {
  readonly preset = null;
  readonly maxImages = 0;
  readonly stopStrings: readonly string[] = [];
  readonly defaults: SamplingDefaults = { temperature: 0.7, topP: 0.9, maxNewTokens: 256 };
  readonly stopTokenIds: readonly number[];
  private readonly template: ChatTemplate;
  readonly id: string;
  readonly tokenizer: Tokenizer;
  private readonly lm: LlamaModel;

  constructor(id: string, tokenizer: Tokenizer, lm: LlamaModel) {
    this.id = id;
    this.tokenizer = tokenizer;
    this.lm = lm;
    this.template = new ChatTemplate(tokenizer.chatTemplate ?? builtinChatTemplates.llama2, tokenizer.chatTemplate ? 'tokenizer_config.json' : 'llama2');
    const eos = new Set(lm.config.eosTokenIds);
    if (tokenizer.eosId !== null) eos.add(tokenizer.eosId);
    this.stopTokenIds = [...eos];
  }

  get maxPositions(): number {
    return this.lm.maxPositions;
  }

  planImage(): ImagePlan {
    throw new Error(`model '${this.id}' is a text-only language model: it takes no images`);
  }

  prepare(turns: readonly ChatTurn[], images: readonly ChatImage[]): PreparedChat {
    if (images.length > 0 || turns.some((t) => typeof t.content !== 'string' && t.content.some((p) => p.type === 'image'))) {
      throw new Error(`model '${this.id}' is a text-only language model: it takes no images`);
    }
    const text = this.template.render(turns.map((t) => ({ role: t.role, content: turnText(t) })), {
      addGenerationPrompt: true, bosToken: this.tokenizer.bosToken ?? '', eosToken: this.tokenizer.eosToken ?? '',
    });
    const ids = this.tokenizer.encode(text, { addSpecialTokens: false });
    if (ids.length > this.maxPositions) throw new Error(`prompt of ${ids.length} tokens exceeds the context length ${this.maxPositions}`);
    return { ids, images: [], lm: this.lm, dispose: () => {} };
  }

  dispose(): void {
    for (const t of flatten<Tensor>(this.lm.params).values()) t.dispose();
  }
}

/** Loads a model folder for chat: config.json + safetensors + tokenizer.json. */
export async function loadChatModel(dir: string): Promise<ChatModel> {
  const json = readConfigJson(dir);
  const id = path.basename(path.resolve(dir));
  if (json.model_type === 'chimera_vlm' || json.model_type === 'llava') {
    const { loadVlmChatModel } = await import('./vlm/chat.ts');
    return loadVlmChatModel(dir);
  }
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) throw new Error(`model folder '${dir}' has no tokenizer.json`);
  const tokenizer = loadTokenizer(dir);
  const loaded = await loadModel(dir);
  if (loaded.modelType !== 'llama' && loaded.modelType !== 'mistral') {
    throw new Error(`model folder '${dir}': model_type '${loaded.modelType}' is not a language model (chat needs llama, mistral or chimera_vlm)`);
  }
  return new TextChatModel(id, tokenizer, new LlamaModel(loaded.params as LlamaParams, loaded.config as LlamaConfig));
}
