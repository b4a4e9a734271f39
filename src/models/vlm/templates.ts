// Conversation templates of the systems, as segments that know which text is supervised, so one
// renderer serves chat prompts and training labels alike. Images appear as `{image: i}` segments
// where the user placed them; the tokenizer step turns them into placeholder ids.

import type { Tokenizer } from '../../io/tokenizer.ts';

export type Segment =
  | { text: string; supervised?: boolean }
  | { special: 'bos' | 'eos'; supervised?: boolean }
  | { image: number };

export interface Turn {
  role: 'system' | 'user' | 'assistant';
  /** Text and image references in order. */
  parts: ({ text: string } | { image: number })[];
}

export interface ConversationTemplate {
  readonly name: string;
  /** Stop strings generation should honour besides EOS. */
  readonly stopStrings: readonly string[];
  /**
   * Segments of a conversation. With `generation`, the conversation must end with a user turn
   * and the assistant's turn is left open; otherwise assistant turns are supervised.
   */
  render(turns: readonly Turn[], generation: boolean): Segment[];
}

/** LLaMA2-Accessory conv_v1_2 (SPEC §1.12). */
export const SPHINX_SYSTEM = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";
/** LLaVA conv_vicuna_v1 (SPEC §3.3). */
export const VICUNA_SYSTEM = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

function splitSystem(turns: readonly Turn[], def: string): { system: string; rest: readonly Turn[] } {
  if (turns.length > 0 && turns[0]!.role === 'system') return { system: turns[0]!.parts.map((p) => ('text' in p ? p.text : '')).join(''), rest: turns.slice(1) };
  return { system: def, rest: turns };
}

function checkOrder(rest: readonly Turn[], generation: boolean, name: string): void {
  rest.forEach((t, i) => {
    const want = i % 2 === 0 ? 'user' : 'assistant';
    if (t.role !== want) throw new Error(`${name} template: turn ${i + 1} is '${t.role}' but '${want}' was expected (user and assistant turns alternate after an optional system turn)`);
  });
  if (rest.length === 0) throw new Error(`${name} template: no user turn`);
  if (generation && rest[rest.length - 1]!.role !== 'user') throw new Error(`${name} template: the last turn must be the user's to generate a reply`);
}

function partsOf(t: Turn, supervised = false): Segment[] {
  return t.parts.map((p) => ('text' in p ? { text: p.text, supervised } : { image: p.image }));
}

/**
 * SPHINX: SYSTEM "\n\n###" then " Human: q\n###" " Assistant: a\n###"; the reply and its "\n###"
 * are supervised. The space after "Assistant:" is supervised with the reply (as SentencePiece folds
 * it into the reply's first token), so a prompt ending in " Assistant:" (SPEC §1.12) continues
 * exactly as training taught.
 */
const sphinx: ConversationTemplate = {
  name: 'sphinx',
  stopStrings: ['\n###'],
  render(turns, generation) {
    const { system, rest } = splitSystem(turns, SPHINX_SYSTEM);
    checkOrder(rest, generation, 'sphinx');
    const out: Segment[] = [{ special: 'bos' }, { text: `${system}\n\n###` }];
    for (const t of rest) {
      if (t.role === 'user') out.push({ text: ' Human: ' }, ...partsOf(t), { text: '\n###' });
      else out.push({ text: ' Assistant:' }, { text: ' ', supervised: true }, ...partsOf(t, true), { text: '\n###', supervised: true });
    }
    if (generation) out.push({ text: ' Assistant:' });
    return merge(out);
  },
};

/** LLaVA conv_vicuna_v1: SYSTEM " USER: q ASSISTANT: a</s>USER: ..." (sep " ", sep2 "</s>"). */
const vicunaV1: ConversationTemplate = {
  name: 'vicuna_v1',
  stopStrings: [],
  render(turns, generation) {
    const { system, rest } = splitSystem(turns, VICUNA_SYSTEM);
    checkOrder(rest, generation, 'vicuna_v1');
    const out: Segment[] = [{ special: 'bos' }, { text: `${system} ` }];
    for (const t of rest) {
      if (t.role === 'user') out.push({ text: 'USER: ' }, ...partsOf(t), { text: ' ' });
      else out.push({ text: 'ASSISTANT:' }, { text: ' ', supervised: true }, ...partsOf(t, true), { special: 'eos', supervised: true });
    }
    if (generation) out.push({ text: 'ASSISTANT:' });
    return merge(out);
  },
};

/** LLaVA stage-1 'plain': the image, then the caption and "\n"; no system text or roles. */
const plain: ConversationTemplate = {
  name: 'plain',
  stopStrings: ['\n'],
  render(turns, generation) {
    const out: Segment[] = [{ special: 'bos' }];
    for (const t of turns) {
      if (t.role === 'user') out.push(...t.parts.filter((p) => 'image' in p).map((p) => ({ image: (p as { image: number }).image })));
      else if (t.role === 'assistant') out.push(...partsOf(t, true), { text: '\n', supervised: true });
    }
    void generation;
    return merge(out);
  },
};

/** ChatML (Qwen-VL chat, InternLM-style chat models): <|im_start|>role\n...<|im_end|>\n. */
const chatml: ConversationTemplate = {
  name: 'chatml',
  stopStrings: ['<|im_end|>'],
  render(turns, generation) {
    const { system, rest } = splitSystem(turns, 'You are a helpful assistant.');
    checkOrder(rest, generation, 'chatml');
    const out: Segment[] = [{ text: `<|im_start|>system\n${system}<|im_end|>\n` }];
    for (const t of rest) {
      out.push({ text: `<|im_start|>${t.role}\n` }, ...partsOf(t, t.role === 'assistant'));
      out.push({ text: '<|im_end|>', supervised: t.role === 'assistant' }, { text: '\n' });
    }
    if (generation) out.push({ text: '<|im_start|>assistant\n' });
    return merge(out);
  },
};

/** Adjacent text segments with the same supervision joined (fewer tokenizer boundaries). */
function merge(segs: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segs) {
    const last = out[out.length - 1];
    if (last && 'text' in last && 'text' in s && (last.supervised ?? false) === (s.supervised ?? false)) out[out.length - 1] = { text: last.text + s.text, supervised: last.supervised ?? false };
    else if (!('text' in s) || s.text !== '') out.push(s);
  }
  return out;
}

const TEMPLATES = new Map<string, ConversationTemplate>([sphinx, vicunaV1, plain, chatml].map((t) => [t.name, t]));

export function registerTemplate(t: ConversationTemplate): void {
  TEMPLATES.set(t.name, t);
}

export function templateFor(name: string): ConversationTemplate {
  const t = TEMPLATES.get(name);
  if (t === undefined) throw new Error(`unknown conversation template '${name}' (known: ${[...TEMPLATES.keys()].join(', ')})`);
  return t;
}

export interface Tokenized {
  ids: number[];
  /** Target per id: the id where supervised, -100 elsewhere. */
  labels: number[];
  /** Image indices in the order their placeholders appear. */
  images: number[];
}

/** Segments -> ids with one placeholder id per image segment and labels on supervised text. */
export function tokenizeSegments(tok: Tokenizer, segs: readonly Segment[], imageTokenId: number): Tokenized {
  const ids: number[] = [], labels: number[] = [], images: number[] = [];
  for (const s of segs) {
    if ('image' in s) { ids.push(imageTokenId); labels.push(-100); images.push(s.image); continue; }
    let piece: number[];
    if ('special' in s) {
      const id = s.special === 'bos' ? tok.bosId : tok.eosId;
      if (id === null) {
        if (s.special === 'bos') continue; // tokenizers without BOS
        throw new Error(`tokenizer ${tok.source} has no EOS token, which the template needs`);
      }
      piece = [id];
    } else piece = tok.encode(s.text, { addSpecialTokens: false });
    if (piece.includes(imageTokenId)) throw new Error(`text contains the image placeholder token (id ${imageTokenId}) outside an image part`);
    for (const id of piece) { ids.push(id); labels.push(s.supervised ? id : -100); }
  }
  return { ids, labels, images };
}
