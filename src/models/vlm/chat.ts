// A Chimera multimodal folder as a ChatModel: the system's template, images prepared with the
// requested detail, placeholders expanded, and a batch-1 session for generation.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer, type Tokenizer } from '../../io/tokenizer.ts';
import type { ChatImage, ChatModel, ChatTurn, Detail, ImagePlan, PreparedChat, SamplingDefaults } from '../chat-model.ts';
import { loadModel } from '../load.ts';
import { flatten } from '../../engine/tree.ts';
import type { Tensor } from '../../engine/tensor.ts';
import { VlmModel, type VlmConfig, type VlmParams } from './model.ts';
import type { PreparedImage } from './system.ts';
import { templateFor, tokenizeSegments, type ConversationTemplate, type Turn } from './templates.ts';

/** Chat turns -> template turns: string content, or parts with image references checked against `count`. */
export function toTurns(turns: readonly ChatTurn[], count: number): Turn[] {
  const used = new Set<number>();
  const out = turns.map((t, i): Turn => {
    const content = t.content;
    if (typeof content === 'string') return { role: t.role, parts: [{ text: content }] };
    const parts: Turn['parts'] = [];
    content.forEach((p, j) => {
      if (p.type === 'text') parts.push({ text: p.text });
      else {
        if (!Number.isInteger(p.image) || p.image < 0 || p.image >= count) throw new Error(`turn ${i + 1} part ${j + 1} refers to image ${p.image} but ${count} image${count === 1 ? ' was' : 's were'} given`);
        if (used.has(p.image)) throw new Error(`image ${p.image} is referenced twice`);
        if (t.role !== 'user') throw new Error(`turn ${i + 1}: images may only appear in user turns (got '${t.role}')`);
        used.add(p.image);
        parts.push({ image: p.image });
        const next = content[j + 1];
        if (next !== undefined && next.type === 'text' && !next.text.startsWith('\n')) parts.push({ text: '\n' }); // LLaVA's "<image>\n{question}"
      }
    });
    return { role: t.role, parts };
  });
  if (used.size !== count) throw new Error(`${count} image${count === 1 ? '' : 's'} given but ${used.size} referenced by the conversation`);
  return out;
}

export class VlmChatModel implements ChatModel {
  readonly id: string;
  readonly tokenizer: Tokenizer;
  readonly model: VlmModel;
  readonly template: ConversationTemplate;
  readonly stopTokenIds: readonly number[];
  readonly stopStrings: readonly string[];
  readonly defaults: SamplingDefaults;

  constructor(id: string, tokenizer: Tokenizer, model: VlmModel) {
    this.id = id;
    this.tokenizer = tokenizer;
    this.model = model;
    const info = model.config.info;
    this.template = templateFor(info.template);
    const eos = new Set(model.config.text.eosTokenIds);
    if (tokenizer.eosId !== null) eos.add(tokenizer.eosId);
    this.stopTokenIds = [...eos];
    this.stopStrings = [...new Set([...info.stopStrings, ...this.template.stopStrings])];
    this.defaults = { temperature: info.sampling.temperature, topP: info.sampling.topP, maxNewTokens: 512 };
  }

  get preset(): string { return this.model.config.preset; }
  get maxPositions(): number { return this.model.maxPositions; }
  get maxImages(): number { return this.model.config.info.maxImages; }

  planImage(width: number, height: number, detail: Detail): ImagePlan {
    return this.model.planImage(width, height, detail);
  }

  /** Ids and labels of a conversation (for training and scoring): images as placeholders. */
  tokenize(turns: readonly ChatTurn[], imageCount: number, generation: boolean): { ids: number[]; labels: number[]; images: number[] } {
    const segs = this.template.render(toTurns(turns, imageCount), generation);
    return tokenizeSegments(this.tokenizer, segs, this.model.config.imageTokenId);
  }

  /** Ids of the text of the user turn that carries image `i` (text-guided bridges read it). */
  instructionFor(turns: readonly ChatTurn[], i: number): number[] {
    const turn = turns.find((t) => typeof t.content !== 'string' && t.content.some((p) => p.type === 'image' && p.image === i));
    if (turn === undefined || typeof turn.content === 'string') return [];
    const text = turn.content.map((p) => (p.type === 'text' ? p.text : '')).join(' ').trim();
    return text === '' ? [] : this.tokenizer.encode(text, { addSpecialTokens: false });
  }

  prepare(turns: readonly ChatTurn[], images: readonly ChatImage[]): PreparedChat {
    if (images.length > this.maxImages) throw new Error(`${images.length} images exceed this model's limit of ${this.maxImages} per prompt`);
    const tok = this.tokenize(turns, images.length, true);
    const info = this.model.config.info;
    // SPHINX puts a single image right after BOS with no placeholder (SPEC §1.5).
    let ids = tok.ids;
    if (info.layout === 'after-bos' && !info.keepPlaceholder && images.length === 1) ids = ids.filter((t) => t !== this.model.config.imageTokenId);
    const order = tok.images; // placeholder order -> image index
    const prepared: PreparedImage[] = [];
    try {
      for (const i of order) {
        const im = images[i]!;
        const p = this.model.prepareImage(im.image, im.detail ?? 'high');
        p.instruction = this.instructionFor(turns, i);
        prepared.push(p);
      }
      const session = this.model.session({ ids, images: prepared });
      const total = session.layout.ids.length;
      if (total > this.maxPositions) {
        session.dispose();
        throw new Error(`prompt of ${total} positions (text and images) exceeds the context length ${this.maxPositions}`);
      }
      return {
        ids: session.ids,
        images: prepared.map((p) => ({ views: p.views, positions: p.positions, size: p.size })),
        lm: session,
        dispose: () => session.dispose(),
      };
    } finally {
      for (const p of prepared) for (const t of Object.values(p.pixels)) t.dispose();
    }
  }

  dispose(): void {
    for (const t of flatten<Tensor>(this.model.params).values()) t.dispose();
  }
}

export async function loadVlmChatModel(dir: string): Promise<VlmChatModel> {
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) throw new Error(`model folder '${dir}' has no tokenizer.json`);
  const tokenizer = loadTokenizer(dir);
  const loaded = await loadModel<VlmConfig, VlmParams>(dir);
  const model = new VlmModel(loaded.params, loaded.config);
  if (tokenizer.vocabSize > loaded.config.text.vocabSize) {
    throw new Error(`${dir}: tokenizer has ${tokenizer.vocabSize} ids but the language model's vocab_size is ${loaded.config.text.vocabSize}`);
  }
  return new VlmChatModel(path.basename(path.resolve(dir)), tokenizer, model);
}
