// Tokenizers: Hugging Face `tokenizer.json` (+ optional tokenizer_config.json) behind a small
// Chimera interface. Encoding/decoding is done by @huggingface/tokenizers (the pure-JS port used
// by transformers.js); this file validates the files, resolves special tokens, and adds
// streaming decode. Tested families: byte-level BPE (GPT-2 / LLaMA-3 style) and SentencePiece-
// style BPE with byte fallback (LLaMA-2 style: ▁ metaspace, <0xNN> byte tokens).
// Every error is `Error("tokenizer: <file>: <what is wrong>")`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

export interface EncodeOptions {
  /** Add the tokens the tokenizer adds around a sequence (e.g. BOS). Default true. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop every special token (added tokens flagged special, plus bos/eos/pad/unk). Default false. */
  skipSpecialTokens?: boolean;
  /** HF's " ." -> "." style clean-up. Default: tokenizer_config's clean_up_tokenization_spaces, else false. */
  cleanUpTokenizationSpaces?: boolean;
}

/** Incremental decoder for generation: push ids one at a time, get back newly completed text. */
export interface StreamDecoder {
  /** Appends one id; returns the text it completes ('' while a UTF-8 character is still partial). */
  push(id: number): string;
  /** Returns whatever is still pending (partial bytes become U+FFFD) and resets the decoder. */
  flush(): string;
}

export interface Tokenizer {
  /** File (or '<memory>') the tokenizer came from; used in error messages. */
  readonly source: string;
  /** Max id + 1 over the model vocabulary and the added tokens. */
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  /** Every special token: content -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Jinja chat template from the config (the 'default' one when there are several), or null. */
  readonly chatTemplate: string | null;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  decodeStream(options?: DecodeOptions): StreamDecoder;
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  isSpecial(id: number): boolean;
}

/** Values that override (or stand in for a missing) tokenizer_config.json. */
export interface TokenizerOverrides {
  bosToken?: string | null;
  eosToken?: string | null;
  padToken?: string | null;
  unkToken?: string | null;
  chatTemplate?: string | null;
}

export type JsonObject = Record<string, unknown>;

/** The part of @huggingface/tokenizers' Tokenizer this file uses (its .d.ts is partly unresolvable under nodenext). */
interface HfLib {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`tokenizer: ${file}: cannot read (${code ?? (e as Error).message})`, { cause: e });
  }
}

function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`tokenizer: ${file}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Loads `tokenizer.json` from a file path or a model directory. Next to it, tokenizer_config.json,
 * special_tokens_map.json (fills special tokens the config lacks) and chat_template.jinja /
 * chat_template.json (used when the config has no chat_template) are read when present.
 */
export function loadTokenizer(p: string, overrides: TokenizerOverrides = {}): Tokenizer {
  let file = p;
  try {
    if (fs.statSync(p).isDirectory()) file = path.join(p, 'tokenizer.json');
  } catch {
    // reported by readJson below, naming the path
  }
  const json = readJson(file);
  const dir = path.dirname(file);
  const sibling = (name: string): string | null => {
    const f = path.join(dir, name);
    return fs.existsSync(f) ? f : null;
  };
  const configFile = sibling('tokenizer_config.json');
  let config: JsonObject = {};
  if (configFile !== null) {
    const c = readJson(configFile);
    if (!isObject(c)) throw new Error(`tokenizer: ${configFile}: expected a JSON object`);
    config = { ...c };
  }
  const mapFile = sibling('special_tokens_map.json');
  if (mapFile !== null) {
    const m = readJson(mapFile);
    if (!isObject(m)) throw new Error(`tokenizer: ${mapFile}: expected a JSON object`);
    for (const k of ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'additional_special_tokens']) {
      if (config[k] === undefined && m[k] !== undefined) config[k] = m[k];
    }
  }
  if (config['chat_template'] === undefined) {
    const jinja = sibling('chat_template.jinja');
    const ctJson = sibling('chat_template.json');
    if (jinja !== null) config['chat_template'] = readText(jinja);
    else if (ctJson !== null) {
      const c = readJson(ctJson);
      if (!isObject(c) || c['chat_template'] === undefined) throw new Error(`tokenizer: ${ctJson}: expected {"chat_template": ...}`);
      config['chat_template'] = c['chat_template'];
    }
  }
  const configSource = [configFile, mapFile].filter((f) => f !== null).join(' + ') || `${file} (no tokenizer_config.json)`;
  return tokenizerFromJson(json, config, { ...overrides, source: file, configSource });
}

/** Builds a tokenizer from parsed tokenizer.json / tokenizer_config.json objects. */
export function tokenizerFromJson(
  tokenizerJson: unknown,
  tokenizerConfig: unknown = {},
  options: TokenizerOverrides & { source?: string; configSource?: string } = {},
): Tokenizer {
  const source = options.source ?? '<memory>';
  const configSource = options.configSource ?? `${source} (tokenizer_config)`;
  validateTokenizerJson(tokenizerJson, source);
  if (!isObject(tokenizerConfig)) throw new Error(`tokenizer: ${configSource}: expected a JSON object`);
  return new HfBackedTokenizer(tokenizerJson, tokenizerConfig, options, source, configSource);
}

/** Structural checks the library would otherwise turn into obscure failures; throws naming `source`. */
export function validateTokenizerJson(json: unknown, source: string): asserts json is JsonObject {
  const fail = (what: string): never => {
    throw new Error(`tokenizer: ${source}: ${what}`);
  };
  if (!isObject(json)) fail('expected a JSON object (a Hugging Face tokenizer.json)');
  const t = json as JsonObject;
  const model = t['model'];
  if (!isObject(model)) fail('missing "model" object');
  const m = model as JsonObject;
  const type = m['type'];
  if (type !== undefined && typeof type !== 'string') fail('model.type must be a string');
  for (const k of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) {
    const v = t[k];
    if (v !== undefined && v !== null && !(isObject(v) && typeof v['type'] === 'string')) fail(`"${k}" must be null or an object with a string "type"`);
  }
  const added = t['added_tokens'];
  if (added !== undefined && !Array.isArray(added)) fail('"added_tokens" must be an array');
  for (const [i, a] of ((added as unknown[] | undefined) ?? []).entries()) {
    if (!isObject(a) || typeof a['content'] !== 'string' || !Number.isSafeInteger(a['id']) || (a['id'] as number) < 0) {
      fail(`added_tokens[${i}] must be {id: non-negative integer, content: string}`);
    }
  }
  if (type === 'BPE' || (type === undefined && m['merges'] !== undefined)) {
    const vocab = m['vocab'];
    if (!isObject(vocab)) fail('model.vocab must be an object {token: id}');
    const v = vocab as JsonObject;
    const seen = new Map<number, string>();
    for (const [tok, id] of Object.entries(v)) {
      if (!Number.isSafeInteger(id) || (id as number) < 0) fail(`model.vocab[${JSON.stringify(tok)}] = ${JSON.stringify(id)} is not a non-negative integer`);
      const prev = seen.get(id as number);
      if (prev !== undefined) fail(`model.vocab: id ${id as number} is used by both ${JSON.stringify(prev)} and ${JSON.stringify(tok)}`);
      seen.set(id as number, tok);
    }
    const merges = m['merges'];
    if (!Array.isArray(merges)) fail('model.merges must be an array');
    const tokensSet = new Set(seen.values());
    const has = (s: string): boolean => tokensSet.has(s);
    const list = merges as unknown[];
    const prefix = typeof m['continuing_subword_prefix'] === 'string' ? m['continuing_subword_prefix'] : '';
    for (let i = 0; i < list.length; i++) {
      const mg = list[i];
      let a: string, b: string;
      if (typeof mg === 'string') {
        const sp = mg.indexOf(' ');
        if (sp < 0) fail(`model.merges[${i}] = ${JSON.stringify(mg)} is not "left right"`);
        a = mg.slice(0, sp);
        b = mg.slice(sp + 1);
      } else if (Array.isArray(mg) && mg.length === 2 && typeof mg[0] === 'string' && typeof mg[1] === 'string') {
        [a, b] = mg as [string, string];
      } else {
        return fail(`model.merges[${i}] must be "left right" or ["left", "right"]`);
      }
      // As HF's BPE builder: the merged token drops b's continuing-subword prefix.
      const merged = prefix !== '' && b.startsWith(prefix) ? a + b.slice(prefix.length) : a + b;
      const missing = !has(a) ? a : !has(b) ? b : !has(merged) ? merged : null;
      if (missing !== null) fail(`model.merges[${i}] (${JSON.stringify(a)} + ${JSON.stringify(b)}) uses ${JSON.stringify(missing)}, which is not in model.vocab`);
    }
    const unk = m['unk_token'];
    const addedContents = ((added as JsonObject[] | undefined) ?? []).map((a) => a['content']);
    if (unk !== undefined && unk !== null && (typeof unk !== 'string' || !(has(unk) || addedContents.includes(unk)))) {
      fail(`model.unk_token ${JSON.stringify(unk)} is in neither model.vocab nor added_tokens`);
    }
  } else if (type !== 'WordPiece' && type !== 'Unigram' && !(type === undefined && m['vocab'] !== undefined)) {
    fail(`unsupported model.type ${JSON.stringify(type)} (supported: BPE, WordPiece, Unigram)`);
  }
}

/** HF configs write special tokens as "<s>" or {"content": "<s>", ...}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v['content'] === 'string') return v['content'];
  return null;
}

/** Leading / trailing SpecialToken of a TemplateProcessing post-processor (searched inside Sequence). */
function templateSpecials(pp: unknown): { first: string | null; last: string | null } {
  if (!isObject(pp)) return { first: null, last: null };
  if (pp['type'] === 'Sequence' && Array.isArray(pp['processors'])) {
    for (const p of pp['processors']) {
      const r = templateSpecials(p);
      if (r.first !== null || r.last !== null) return r;
    }
    return { first: null, last: null };
  }
  if (pp['type'] !== 'TemplateProcessing' || !Array.isArray(pp['single'])) return { first: null, last: null };
  const single = pp['single'] as unknown[];
  const special = (item: unknown): string | null => {
    if (!isObject(item) || !isObject(item['SpecialToken'])) return null;
    const id = item['SpecialToken']['id'];
    return typeof id === 'string' ? id : null;
  };
  return { first: special(single[0]), last: single.length > 1 ? special(single[single.length - 1]) : null };
}

class HfBackedTokenizer implements Tokenizer {
  readonly source: string;
  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  readonly unkId: number | null;
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly chatTemplate: string | null;
  private readonly lib: HfLib;
  private readonly specialIds: Set<number>;
  private readonly cleanUp: boolean;
  /** From tokenizer_config add_bos_token / add_eos_token; null = leave it to the post-processor. */
  private readonly addBos: boolean | null;
  private readonly addEos: boolean | null;

  constructor(json: JsonObject, config: JsonObject, overrides: TokenizerOverrides, source: string, configSource: string) {
    this.source = source;
    try {
      this.lib = new HfTokenizer({ added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...json }, config) as unknown as HfLib;
    } catch (e) {
      throw new Error(`tokenizer: ${source}: @huggingface/tokenizers rejected it: ${(e as Error).message}`, { cause: e });
    }
    const model = json['model'] as JsonObject;
    const added = (json['added_tokens'] as JsonObject[] | undefined) ?? [];
    let maxId = -1;
    if (isObject(model['vocab'])) for (const id of Object.values(model['vocab'])) maxId = Math.max(maxId, id as number);
    else if (Array.isArray(model['vocab'])) maxId = model['vocab'].length - 1; // Unigram: [[piece, score], ...]
    for (const a of added) maxId = Math.max(maxId, a['id'] as number);
    this.vocabSize = maxId + 1;

    const pp = templateSpecials(json['post_processor']);
    const pick = (key: 'bos' | 'eos' | 'pad' | 'unk', o: string | null | undefined, fallback: string | null): string | null => {
      if (o !== undefined) return o;
      const c = config[`${key}_token`];
      return c === undefined ? fallback : tokenContent(c);
    };
    this.bosToken = pick('bos', overrides.bosToken, pp.first);
    this.eosToken = pick('eos', overrides.eosToken, pp.last);
    this.padToken = pick('pad', overrides.padToken, null);
    const modelUnk = typeof model['unk_token'] === 'string' ? model['unk_token'] : null;
    this.unkToken = pick('unk', overrides.unkToken, modelUnk);
    const resolve = (name: string, tok: string | null): number | null => {
      if (tok === null) return null;
      const id = this.lib.token_to_id(tok);
      if (id === undefined) throw new Error(`tokenizer: ${configSource}: ${name} ${JSON.stringify(tok)} is not in the vocabulary of ${source}`);
      return id;
    };
    this.bosId = resolve('bos_token', this.bosToken);
    this.eosId = resolve('eos_token', this.eosToken);
    this.padId = resolve('pad_token', this.padToken);
    this.unkId = resolve('unk_token', this.unkToken);

    const specials = new Map<string, number>();
    for (const a of added) if (a['special'] === true) specials.set(a['content'] as string, a['id'] as number);
    for (const [tok, id] of [[this.bosToken, this.bosId], [this.eosToken, this.eosId], [this.padToken, this.padId], [this.unkToken, this.unkId]] as const) {
      if (tok !== null && id !== null) specials.set(tok, id);
    }
    const extra = config['additional_special_tokens'];
    if (Array.isArray(extra)) {
      for (const e of extra) {
        const tok = tokenContent(e);
        if (tok === null) throw new Error(`tokenizer: ${configSource}: additional_special_tokens holds ${JSON.stringify(e)}`);
        specials.set(tok, resolve('additional special token', tok)!);
      }
    }
    this.specialTokens = specials;
    this.specialIds = new Set(specials.values());

    const cu = config['clean_up_tokenization_spaces'];
    this.cleanUp = typeof cu === 'boolean' ? cu : false;
    const flag = (k: string): boolean | null => (typeof config[k] === 'boolean' ? (config[k] as boolean) : null);
    this.addBos = flag('add_bos_token');
    this.addEos = flag('add_eos_token');
    if (this.addBos === true && this.bosId === null) throw new Error(`tokenizer: ${configSource}: add_bos_token is true but there is no bos_token`);
    if (this.addEos === true && this.eosId === null) throw new Error(`tokenizer: ${configSource}: add_eos_token is true but there is no eos_token`);

    this.chatTemplate = overrides.chatTemplate !== undefined ? overrides.chatTemplate : pickChatTemplate(config['chat_template'], configSource);
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`tokenizer.encode: ${this.source}: text must be a string, got ${typeof text}`);
    const add = options.addSpecialTokens ?? true;
    if (this.addBos === null && this.addEos === null) return this.lib.encode(text, { add_special_tokens: add }).ids;
    // Like HF LlamaTokenizerFast: add_bos_token / add_eos_token in the config decide, not the post-processor.
    const ids = this.lib.encode(text, { add_special_tokens: false }).ids;
    if (!add) return ids;
    if (this.addBos === true) ids.unshift(this.bosId!);
    if (this.addEos === true) ids.push(this.eosId!);
    return ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const list: number[] = [];
    const skip = options.skipSpecialTokens ?? false;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.lib.id_to_token(id) === undefined) {
        throw new Error(`tokenizer.decode: ${this.source}: ids[${i}] = ${id} is not a token id (vocabSize ${this.vocabSize})`);
      }
      if (!(skip && this.specialIds.has(id))) list.push(id);
    }
    if (list.length === 0) return '';
    return this.lib.decode(list, { skip_special_tokens: false, clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUp });
  }

  decodeStream(options: DecodeOptions = {}): StreamDecoder {
    return new IncrementalDecoder(this, options);
  }

  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.lib.id_to_token(id) : undefined;
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}

function pickChatTemplate(v: unknown, configSource: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  // [{name, template}, ...]: HF picks 'default'.
  if (Array.isArray(v)) {
    const named = v.filter((x): x is JsonObject => isObject(x) && typeof x['name'] === 'string' && typeof x['template'] === 'string');
    if (named.length === v.length) {
      const d = named.find((x) => x['name'] === 'default');
      return d !== undefined ? (d['template'] as string) : null;
    }
  }
  throw new Error(`tokenizer: ${configSource}: chat_template must be a string or [{name, template}]`);
}

/**
 * Streaming detokenization (the prefix-window scheme used by HF text-generation-inference):
 * decode ids[prefix:read] and ids[prefix:], emit the difference once it does not end in U+FFFD.
 * Decoding a window that starts with already-emitted tokens keeps context-dependent decoders
 * (metaspace leading-space strip, byte fallback, byte-level) consistent with a full decode.
 */
class IncrementalDecoder implements StreamDecoder {
  private ids: number[] = [];
  private prefix = 0;
  private read = 0;
  private readonly tok: Tokenizer;
  private readonly options: DecodeOptions;
  constructor(tok: Tokenizer, options: DecodeOptions) {
    this.tok = tok;
    this.options = options;
  }

  push(id: number): string {
    // Validate before buffering so a bad id leaves the decoder usable.
    if (this.tok.idToToken(id) === undefined || id >= this.tok.vocabSize) {
      throw new Error(`tokenizer.decodeStream: ${this.tok.source}: ${id} is not a token id (vocabSize ${this.tok.vocabSize})`);
    }
    this.ids.push(id);
    return this.emit(false);
  }

  flush(): string {
    const out = this.emit(true);
    this.ids = [];
    this.prefix = this.read = 0;
    return out;
  }

  private emit(final: boolean): string {
    const before = this.tok.decode(this.ids.slice(this.prefix, this.read), this.options);
    const after = this.tok.decode(this.ids.slice(this.prefix), this.options);
    if (after.length <= before.length || (!final && after.endsWith('\uFFFD'))) return '';
    const out = after.slice(before.length);
    // Keep only the last emitted chunk as context.
    this.ids = this.ids.slice(this.read);
    this.prefix = 0;
    this.read = this.ids.length;
    return out;
  }
}
