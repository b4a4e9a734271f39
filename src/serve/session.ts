// A multi-turn conversation for the command line (`chimera chat`, `chimera run`): turns and
// images accumulate; images attached before a message go into that user turn (image parts
// first, then the text). A failed turn is rolled back so the history stays valid.

import { decodeImage } from '../io/image.ts';
import type { ChatImage, ChatModel, ChatPart, ChatTurn, Detail } from '../models/chat-model.ts';
import type { SamplingRequest } from './chat-request.ts';
import { runCompletion, type CompletionResult } from './completion.ts';

/** Decodes an image file (sharp with limits; EXIF, CMYK, 16-bit, palette and alpha normalised). */
export async function loadImageFile(p: string, detail: Detail = 'high'): Promise<ChatImage> {
  const d = await decodeImage(p);
  return { image: { width: d.width, height: d.height, data: d.data }, detail };
}

export class ChatSession {
  readonly model: ChatModel;
  private turns: ChatTurn[] = [];
  private images: ChatImage[] = [];
  private pending: ChatImage[] = [];
  private readonly system: string | null;

  constructor(model: ChatModel, system: string | null = null) {
    this.model = model;
    this.system = system;
    this.reset();
  }

  reset(): void {
    this.turns = this.system !== null ? [{ role: 'system', content: this.system }] : [];
    this.images = [];
    this.pending = [];
  }

  /** Images waiting for the next message. */
  get pendingImages(): number {
    return this.pending.length;
  }

  get history(): readonly ChatTurn[] {
    return this.turns;
  }

  /** Queues an image for the next user message; refuses it at once for a text-only model or past maxImages. */
  attach(img: ChatImage): void {
    const max = this.model.maxImages;
    if (max === 0) throw new Error(`model '${this.model.id}' is a text-only language model: it takes no images`);
    if (this.images.length + this.pending.length + 1 > max) throw new Error(`the conversation would carry ${this.images.length + this.pending.length + 1} images, over the model's limit of ${max} (use /reset)`);
    this.pending.push(img);
  }

  /** Sends a user message with the pending images; streams through onDelta. Rolls back on error. */
  async send(text: string, s: SamplingRequest, onDelta?: (d: string) => void, signal?: AbortSignal): Promise<CompletionResult> {
    const base = this.images.length;
    const parts: ChatPart[] = [...this.pending.map((_, i): ChatPart => ({ type: 'image', image: base + i })), { type: 'text', text }];
    const turn: ChatTurn = { role: 'user', content: this.pending.length > 0 ? parts : text };
    const images = [...this.images, ...this.pending];
    const turns = [...this.turns, turn];
    const r = await runCompletion(this.model, turns, images, s, { ...(onDelta ? { onDelta } : {}), ...(signal ? { signal } : {}) });
    this.turns = [...turns, { role: 'assistant', content: r.text }];
    this.images = images;
    this.pending = [];
    return r;
  }
}
