// Byte-level BPE training for Chimera's own small models. Produces a Hugging Face tokenizer.json
// (+ tokenizer_config.json) that loadTokenizer / @huggingface/tokenizers read back.
// Vocabulary layout: ids [0, k) the special tokens in the given order, [k, k+256) the 256 byte
// symbols in byte order (GPT-2 byte-to-unicode alphabet, so every input is encodable), then one
// id per new merged token in merge order. Deterministic: the pair with the highest count wins,
// ties go to the smaller (left id, right id); the corpus order does not matter.
// Pre-tokenization at training time runs the same @huggingface/tokenizers pre-tokenizer that
// encoding uses, so learned merges match what encode() will see.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as hf from '@huggingface/tokenizers';
import { writeFileAtomic } from './safetensors.ts';
import type { JsonObject } from './tokenizer.ts';

/** LLaMA-3 / tiktoken cl100k-style split: case-insensitive contractions, letters with one leading non-letter, 1-3 digit groups. */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export interface BpeTrainerOptions {
  /** Total vocabulary size: special tokens + 256 bytes + merges. Training stops earlier if no pair is left. */
  vocabSize: number;
  /** Special tokens, ids 0.. in this order. Occurrences in the corpus are cut out before counting. */
  specialTokens?: string[];
  /** Pairs seen fewer times than this are never merged. Default 2. */
  minFrequency?: number;
  /** 'llama3' (default): Split(LLAMA3_SPLIT_PATTERN) + ByteLevel; 'gpt2': ByteLevel with GPT-2's built-in regex. */
  preTokenizer?: 'llama3' | 'gpt2';
  /** Must be among specialTokens. */
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  /** Prepend bosToken / append eosToken when encoding with addSpecialTokens. Default false. */
  addBosToken?: boolean;
  addEosToken?: boolean;
  chatTemplate?: string;
  modelMaxLength?: number;
}

export interface TrainedTokenizer {
  tokenizerJson: JsonObject;
  tokenizerConfig: JsonObject;
  /** Final vocabulary size (<= options.vocabSize). */
  vocabSize: number;
  merges: number;
}

/** GPT-2's reversible byte -> printable-char table: printable Latin-1 bytes map to themselves, the rest to U+0100... */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : next++);
  }
  return out;
})();

function preTokenizerConfig(kind: 'llama3' | 'gpt2'): JsonObject {
  if (kind === 'gpt2') return { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA3_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
}

/** The library's pre-tokenizer classes (not visible through its .d.ts under nodenext). */
type PreTokenizerCtor = new (config: JsonObject) => { pre_tokenize(text: string): string[] };

/** Max-heap entry: higher count first, then smaller (a, b). Stale entries are skipped on pop. */
interface HeapItem {
  count: number;
  a: number;
  b: number;
}

class PairHeap {
  private items: HeapItem[] = [];
  get size(): number {
    return this.items.length;
  }
  private static before(x: HeapItem, y: HeapItem): boolean {
    if (x.count !== y.count) return x.count > y.count;
    if (x.a !== y.a) return x.a < y.a;
    return x.b < y.b;
  }
  push(item: HeapItem): void {
    const h = this.items;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!PairHeap.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): HeapItem | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && PairHeap.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && PairHeap.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

const PAIR_BASE = 2 ** 24; // ids < 2^24, so a * PAIR_BASE + b is an exact double
const pairKey = (a: number, b: number): number => a * PAIR_BASE + b;

/** Trains a byte-level BPE tokenizer on `corpus` (each string is one document). */
export function trainByteLevelBpe(corpus: Iterable<string>, options: BpeTrainerOptions): TrainedTokenizer {
  const specials = options.specialTokens ?? [];
  const minFrequency = options.minFrequency ?? 2;
  const kind = options.preTokenizer ?? 'llama3';
  const k = specials.length;
  if (new Set(specials).size !== k) throw new Error(`trainByteLevelBpe: specialTokens has duplicates: ${JSON.stringify(specials)}`);
  if (specials.some((s) => typeof s !== 'string' || s.length === 0)) throw new Error('trainByteLevelBpe: special tokens must be non-empty strings');
  if (!Number.isSafeInteger(options.vocabSize) || options.vocabSize < k + 256 || options.vocabSize >= PAIR_BASE) {
    throw new Error(`trainByteLevelBpe: vocabSize ${options.vocabSize} must be an integer in [${k + 256}, ${PAIR_BASE}) (${k} special tokens + 256 bytes)`);
  }
  if (!Number.isSafeInteger(minFrequency) || minFrequency < 1) throw new Error(`trainByteLevelBpe: minFrequency ${minFrequency} must be an integer >= 1`);
  if (kind !== 'llama3' && kind !== 'gpt2') throw new Error(`trainByteLevelBpe: preTokenizer must be 'llama3' or 'gpt2', got ${JSON.stringify(kind)}`);
  for (const key of ['bosToken', 'eosToken', 'padToken', 'unkToken'] as const) {
    const t = options[key];
    if (t !== undefined && !specials.includes(t)) throw new Error(`trainByteLevelBpe: ${key} ${JSON.stringify(t)} is not in specialTokens`);
  }
  if (options.addBosToken === true && options.bosToken === undefined) throw new Error('trainByteLevelBpe: addBosToken needs bosToken');
  if (options.addEosToken === true && options.eosToken === undefined) throw new Error('trainByteLevelBpe: addEosToken needs eosToken');

  // 1. Count pre-tokens (byte-level strings) over the corpus, special tokens cut out.
  const preTokConfig = preTokenizerConfig(kind);
  const preTok = new (hf as unknown as { SequencePreTokenizer: PreTokenizerCtor }).SequencePreTokenizer({ type: 'Sequence', pretokenizers: [preTokConfig] });
  const specialSplit = k > 0 ? new RegExp([...specials].sort((x, y) => y.length - x.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'u') : null;
  const wordCounts = new Map<string, number>();
  let docIndex = 0;
  for (const doc of corpus) {
    if (typeof doc !== 'string') throw new Error(`trainByteLevelBpe: corpus item ${docIndex} is ${typeof doc}, not a string`);
    docIndex++;
    for (const section of specialSplit !== null ? doc.split(specialSplit) : [doc]) {
      if (section.length === 0) continue;
      for (const w of preTok.pre_tokenize(section)) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
    }
  }

  // 2. Symbols: specials, then bytes; words as id arrays.
  const charToByte = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));
  const tokens: string[] = [...specials, ...BYTE_TO_CHAR];
  const tokenIds = new Map<string, number>(tokens.map((t, i) => [t, i]));
  if (tokenIds.size !== tokens.length) throw new Error('trainByteLevelBpe: a special token equals a byte symbol; choose another name');
  const wordList = [...wordCounts.keys()].sort(); // corpus order must not matter
  const words: number[][] = wordList.map((w) => Array.from(w, (c) => k + charToByte.get(c)!));
  const counts = wordList.map((w) => wordCounts.get(w)!);

  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addWordPairs = (wi: number, sign: number, touched: Set<number> | null): void => {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.length; i++) {
      const key = pairKey(w[i]!, w[i + 1]!);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + sign * counts[wi]!);
      if (sign > 0) {
        let s = pairWords.get(key);
        if (s === undefined) pairWords.set(key, (s = new Set()));
        s.add(wi);
      }
      touched?.add(key);
    }
  };
  for (let wi = 0; wi < words.length; wi++) addWordPairs(wi, 1, null);
  const heap = new PairHeap();
  for (const [key, count] of pairCounts) heap.push({ count, a: Math.floor(key / PAIR_BASE), b: key % PAIR_BASE });

  // 3. Merge until the vocabulary is full or no pair is frequent enough.
  const merges: [string, string][] = [];
  while (tokens.length < options.vocabSize && heap.size > 0) {
    const top = heap.pop()!;
    const key = pairKey(top.a, top.b);
    if (pairCounts.get(key) !== top.count || top.count <= 0) continue; // stale
    if (top.count < minFrequency) break;
    const merged = tokens[top.a]! + tokens[top.b]!;
    let id = tokenIds.get(merged);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(merged);
      tokenIds.set(merged, id);
    }
    merges.push([tokens[top.a]!, tokens[top.b]!]);
    const touched = new Set<number>();
    for (const wi of [...(pairWords.get(key) ?? [])]) {
      const w = words[wi]!;
      let found = false;
      for (let i = 0; i + 1 < w.length; i++) if (w[i] === top.a && w[i + 1] === top.b) found = true;
      if (!found) continue;
      addWordPairs(wi, -1, touched);
      const out: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === top.a && w[i + 1] === top.b) {
          out.push(id);
          i++;
        } else out.push(w[i]!);
      }
      words[wi] = out;
      addWordPairs(wi, 1, touched);
    }
    pairCounts.delete(key);
    pairWords.delete(key);
    for (const t of touched) {
      const c = pairCounts.get(t);
      if (c === undefined) continue;
      if (c <= 0) {
        pairCounts.delete(t);
        pairWords.delete(t);
      } else heap.push({ count: c, a: Math.floor(t / PAIR_BASE), b: t % PAIR_BASE });
    }
  }

  return buildFiles(tokens, merges, specials, preTokConfig, options);
}

function buildFiles(tokens: string[], merges: [string, string][], specials: string[], preTokConfig: JsonObject, options: BpeTrainerOptions): TrainedTokenizer {
  const vocab = Object.create(null) as Record<string, number>; // so a token named "__proto__" stays a plain key
  tokens.forEach((t, i) => (vocab[t] = i));
  const around = (typeId: number): JsonObject[] => [
    ...(options.addBosToken === true ? [{ SpecialToken: { id: options.bosToken!, type_id: typeId } }] : []),
    { Sequence: { id: typeId === 0 ? 'A' : 'B', type_id: typeId } },
    ...(options.addEosToken === true ? [{ SpecialToken: { id: options.eosToken!, type_id: typeId } }] : []),
  ];
  const used = [...new Set([options.addBosToken === true ? options.bosToken : undefined, options.addEosToken === true ? options.eosToken : undefined])].filter(
    (t): t is string => t !== undefined,
  );
  const postProcessor: JsonObject =
    used.length > 0
      ? {
          type: 'TemplateProcessing',
          single: around(0),
          pair: [...around(0), ...around(1)],
          special_tokens: Object.fromEntries(used.map((t) => [t, { id: t, ids: [tokens.indexOf(t)], tokens: [t] }])),
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  const flags = { single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  const tokenizerJson: JsonObject = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, ...flags })),
    normalizer: null,
    pre_tokenizer: preTokConfig,
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`), // byte-level symbols never contain ' '
    },
  };
  const tokenizerConfig: JsonObject = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    clean_up_tokenization_spaces: false,
    add_bos_token: options.addBosToken ?? false,
    add_eos_token: options.addEosToken ?? false,
    added_tokens_decoder: Object.fromEntries(specials.map((content, id) => [String(id), { content, ...flags }])),
  };
  if (options.bosToken !== undefined) tokenizerConfig['bos_token'] = options.bosToken;
  if (options.eosToken !== undefined) tokenizerConfig['eos_token'] = options.eosToken;
  if (options.padToken !== undefined) tokenizerConfig['pad_token'] = options.padToken;
  if (options.unkToken !== undefined) tokenizerConfig['unk_token'] = options.unkToken;
  if (options.modelMaxLength !== undefined) tokenizerConfig['model_max_length'] = options.modelMaxLength;
  if (options.chatTemplate !== undefined) tokenizerConfig['chat_template'] = options.chatTemplate;
  return { tokenizerJson, tokenizerConfig, vocabSize: tokens.length, merges: merges.length };
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed), atomically. */
export function saveTokenizerFiles(dir: string, trained: TrainedTokenizer): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, obj] of [['tokenizer.json', trained.tokenizerJson], ['tokenizer_config.json', trained.tokenizerConfig]] as const) {
    const bytes = Buffer.from(JSON.stringify(obj, null, 2) + '\n', 'utf8');
    writeFileAtomic(path.join(dir, name), (fd) => {
      fs.writeSync(fd, bytes);
    });
  }
}
