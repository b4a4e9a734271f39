// Tokenizers: the LLaMA-2 vocabulary (shipped by llama-tokenizer-js) rebuilt as a tokenizer.json
// and compared id-for-id with llama-tokenizer-js; a hand-written SentencePiece-style fixture with
// ids worked out by hand; the byte-level BPE trainer (committed fixture must match a retrain);
// streaming decode; chat templates; error messages.
// CHIMERA_REGEN_TOKENIZER_FIXTURES=1 rewrites test/fixtures/tokenizers/bytelevel-tiny.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import llamaTokenizer from 'llama-tokenizer-js';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { loadTokenizer, tokenizerFromJson, type JsonObject, type Tokenizer } from '../src/io/tokenizer.ts';
import { trainByteLevelBpe, saveTokenizerFiles, BYTE_TO_CHAR, type BpeTrainerOptions } from '../src/io/bpe-trainer.ts';
import { applyChatTemplate, applyTokenizerChatTemplate, builtinChatTemplates, ChatTemplate } from '../src/io/chat-template.ts';

function fixturesDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const cand = path.join(dir, 'test', 'fixtures', 'tokenizers');
    if (fs.existsSync(cand)) return cand;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('test/fixtures/tokenizers not found');
    dir = up;
  }
}
const FIX = fixturesDir();

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-tok-'));
}

/** mulberry32: small seeded PRNG for the fuzz corpus. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CORPUS = [
  'Hello world!',
  'The quick brown fox jumps over the lazy dog.',
  ' leading space',
  '   three leading spaces',
  'trailing spaces   ',
  'a    b\t\tc\n\nd\r\ne',
  "It's a dog's life, isn't it? I'm sure we'll see.",
  'function add(a, b) {\n  return a + b; // sum\n}\n',
  'def f(x):\n    if x > 0:\n        return [i**2 for i in range(x)]\n',
  'const url = "https://example.com/path?q=1&r=2#frag";',
  '12345 3.14159 1,000,000 0x1F 2024-01-31 99%',
  'emoji: 😀 👍🏽 👩‍👩‍👧 🇫🇷 ❤️',
  '你好，世界！今天天气很好。',
  '日本語のテキストとカタカナ、ひらがな。',
  '한국어 문장입니다.',
  'Привет, мир! Ёлки-палки.',
  'مرحبا بالعالم',
  'नमस्ते दुनिया',
  'Ünïcödé àccénts ñ ß Æ ø å',
  'combining: e\u0301 a\u0308 n\u0303',
  'math: ∑ ∫ √ ∞ ≈ ≠ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  'tabs\tand\u00a0nbsp\u2009thin space',
  '▁ literal metaspace ▁▁',
  'x',
  ' ',
  '\n',
  '    ',
  'MiXeD CaSe WORDS and CamelCaseIdentifiers_with_underscores',
  '<html><body class="main">text</body></html>',
  '$$ \\frac{a}{b} $$ and `code` and **bold**',
];

const POOLS: string[][] = [
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.split(''),
  ['the', 'and', 'ing', 'tion', 'Hello', 'world', 'token', 'izer', 'Llama', 'model'],
  '0123456789'.split(''),
  ' .,;:!?\'"()[]{}<>/\\|-_=+*&^%$#@~`'.split(''),
  [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n'],
  ['你', '好', '世', '界', '中', '文', '字', 'の', 'テ', 'ス', 'ト', '한', '국'],
  ['😀', '👍', '🏽', '🚀', '🇫', '🇷', '\u200d', '❤', '\ufe0f', '🦙'],
  ['é', 'ü', 'ñ', 'ß', 'ø', 'Ж', 'я', 'ع', 'ب', 'न', 'म', 'ह', '\u0301', '𝔘'],
];

function fuzzCorpus(n: number, seed: number): string[] {
  const r = prng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const parts = 1 + Math.floor(r() * 30);
    let s = '';
    for (let j = 0; j < parts; j++) {
      const pool = POOLS[Math.floor(r() * POOLS.length)]!;
      s += pool[Math.floor(r() * pool.length)]!;
    }
    out.push(s);
  }
  return out;
}

// ---- LLaMA-2 from llama-tokenizer-js --------------------------------------------------------

const SP_DECODER = {
  type: 'Sequence',
  decoders: [
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
    { type: 'ByteFallback' },
    { type: 'Fuse' },
    { type: 'Strip', content: ' ', start: 1, stop: 0 },
  ],
};

/** tokenizer.json in the layout of meta-llama/Llama-2-7b-hf; `metaspace` selects the newer (non-legacy) pre-tokenizer form. */
function llama2Json(metaspace = false): JsonObject {
  const vocabById = llamaTokenizer.vocabById;
  const vocab = Object.create(null) as Record<string, number>;
  vocabById.forEach((t, i) => (vocab[t] = i));
  // merges Map: "left right" -> priority; tokens never contain ' '.
  const merges = [...llamaTokenizer.merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  const flags = { single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [0, 1, 2].map((id) => ({ id, content: vocabById[id], ...flags })),
    normalizer: metaspace
      ? null
      : { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: metaspace ? { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false } : null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: SP_DECODER,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges },
  };
}

const LLAMA2_CONFIG = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
  eos_token: { __type: 'AddedToken', content: '</s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
  unk_token: '<unk>',
  pad_token: null,
  clean_up_tokenization_spaces: false,
  legacy: true,
  chat_template: builtinChatTemplates.llama2,
};

let llama2Cache: Tokenizer | null = null;
/** Written to a temp dir and read back through loadTokenizer (exercises the file path). */
function llama2(): Tokenizer {
  if (llama2Cache === null) {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(llama2Json()));
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(LLAMA2_CONFIG));
    llama2Cache = loadTokenizer(dir);
  }
  return llama2Cache;
}

function streamDecode(tok: Tokenizer, ids: number[], skipSpecialTokens = false): string[] {
  const dec = tok.decodeStream({ skipSpecialTokens });
  const chunks = ids.map((id) => dec.push(id));
  chunks.push(dec.flush());
  return chunks;
}

/** Stream chunks must join to the full decode and never hold a partial character. */
function checkStream(tok: Tokenizer, ids: number[], text: string, label: string): void {
  const chunks = streamDecode(tok, ids, true);
  assert.equal(chunks.join(''), text, `${label}: streamed text`);
  if (!text.includes('\uFFFD')) {
    for (const c of chunks) assert.ok(!c.includes('\uFFFD') && !/[\uD800-\uDFFF]/u.test(c), `${label}: chunk ${JSON.stringify(c)} holds a partial character`);
  }
}

test('llama2: metadata of the rebuilt LLaMA-2 tokenizer', () => {
  const t = llama2();
  assert.equal(t.vocabSize, 32000);
  assert.deepEqual([t.bosId, t.eosId, t.unkId, t.padId], [1, 2, 0, null]);
  assert.deepEqual([t.bosToken, t.eosToken, t.unkToken, t.padToken], ['<s>', '</s>', '<unk>', null]);
  assert.deepEqual([...t.specialTokens.entries()].sort((a, b) => a[1] - b[1]), [['<unk>', 0], ['<s>', 1], ['</s>', 2]]);
  assert.equal(t.idToToken(13), '<0x0A>');
  assert.equal(t.tokenToId('▁the'), 278);
  assert.equal(t.tokenToId('no-such-token-xyz'), undefined);
  assert.equal(t.tokenToId('constructor'), llamaTokenizer.vocabById.indexOf('constructor'));
  assert.equal(t.tokenToId('__proto__'), undefined);
  assert.equal(t.idToToken(-1), undefined);
  assert.equal(t.idToToken(32000), undefined);
  assert.ok(t.isSpecial(1) && !t.isSpecial(278));
  assert.equal(t.chatTemplate, builtinChatTemplates.llama2);
});

test('llama2: known ids', () => {
  const t = llama2();
  assert.deepEqual(t.encode('Hello world!'), [1, 15043, 3186, 29991]); // llama-tokenizer-js README
  assert.deepEqual(t.encode('Hello world!', { addSpecialTokens: false }), [15043, 3186, 29991]);
  assert.deepEqual(t.encode(''), [1]);
  assert.deepEqual(t.encode('', { addSpecialTokens: false }), []);
  assert.deepEqual(t.encode('\n', { addSpecialTokens: false }), [29871, 13]);
  // Special tokens in text are single ids; "[INST]" is ▁[ INST ].
  assert.deepEqual(t.encode('<s>[INST] hi [/INST]', { addSpecialTokens: false }).slice(0, 4), [1, 518, 25580, 29962]);
  assert.deepEqual(t.encode('a</s>', { addSpecialTokens: false }).at(-1), 2);
});

test('llama2: identical ids to llama-tokenizer-js on a varied corpus, and round trips', () => {
  const t = llama2();
  const corpus = [...CORPUS, ...fuzzCorpus(400, 1234)];
  let tokens = 0;
  for (const s of corpus) {
    const expected = llamaTokenizer.encode(s);
    const got = t.encode(s);
    assert.deepEqual(got, expected, `encode ${JSON.stringify(s)}`);
    assert.deepEqual(t.encode(s, { addSpecialTokens: false }), llamaTokenizer.encode(s, false), `encode without BOS ${JSON.stringify(s)}`);
    // A literal ▁ in the input decodes as a space (SentencePiece's own behavior).
    const back = s.replaceAll('▁', ' ');
    assert.equal(t.decode(got, { skipSpecialTokens: true }), back, `round trip ${JSON.stringify(s)}`);
    assert.equal(t.decode(got), `<s> ${back}`, `decode with BOS ${JSON.stringify(s)}`); // as HF: the metaspace after <s> is not stripped
    tokens += got.length;
  }
  assert.ok(tokens > 5000, `corpus too small: ${tokens} tokens`);
});

test('llama2: the non-legacy Metaspace form encodes the same', () => {
  const t = tokenizerFromJson(llama2Json(true), LLAMA2_CONFIG, { source: 'llama2-metaspace' });
  let compared = 0;
  for (const s of [...CORPUS, ...fuzzCorpus(100, 99)]) {
    // Metaspace does not prepend ▁ to text that already starts with one (as in HF's Rust
    // tokenizers), SentencePiece always does: leading-space inputs legitimately differ.
    if (s.includes('▁') || s.startsWith(' ')) continue;
    const ids = t.encode(s);
    assert.deepEqual(ids, llamaTokenizer.encode(s), `encode ${JSON.stringify(s)}`);
    assert.equal(t.decode(ids, { skipSpecialTokens: true }), s);
    compared++;
  }
  assert.ok(compared > 100, `only ${compared} compared`);
  assert.deepEqual(t.encode(' leading', { addSpecialTokens: false }), [8236]);
});

test('llama2: streaming decode emits whole characters only', () => {
  const t = llama2();
  // 😀 has no token: four byte-fallback tokens; nothing comes out until the fourth.
  const ids = t.encode('Hi 😀!', { addSpecialTokens: false });
  const bytes = ['<0xF0>', '<0x9F>', '<0x98>', '<0x80>'].map((b) => t.tokenToId(b)!);
  const at = ids.indexOf(bytes[0]!);
  assert.deepEqual(ids.slice(at, at + 4), bytes);
  const chunks = streamDecode(t, ids);
  assert.deepEqual(chunks.slice(at, at + 4), ['', '', '', '😀']);
  assert.equal(chunks.join(''), 'Hi 😀!');
  for (const s of [...CORPUS, ...fuzzCorpus(150, 7)]) checkStream(t, t.encode(s), s.replaceAll('▁', ' '), JSON.stringify(s));
  // Special tokens: kept or skipped exactly like decode().
  const withEos = [...t.encode('a b'), 2, ...t.encode(' c', { addSpecialTokens: false })];
  assert.equal(streamDecode(t, withEos, false).join(''), t.decode(withEos));
  assert.equal(streamDecode(t, withEos, true).join(''), t.decode(withEos, { skipSpecialTokens: true }));
  // A dangling partial character comes out as U+FFFD on flush, like decode().
  const dec = t.decodeStream();
  assert.equal(dec.push(bytes[0]!) + dec.push(bytes[1]!), '');
  assert.equal(dec.flush(), t.decode([bytes[0]!, bytes[1]!]));
  assert.equal(dec.push(t.tokenToId('▁the')!), 'the'); // flush reset the decoder
  assert.throws(() => dec.push(32000), /tokenizer\.decodeStream: .*32000 is not a token id/);
});

// ---- hand-written SentencePiece-style fixture -----------------------------------------------

test('sp-tiny: hand-computed ids, byte fallback, config handling', () => {
  const t = loadTokenizer(path.join(FIX, 'sp-tiny'));
  assert.equal(t.vocabSize, 277);
  assert.equal(t.bosToken, '<s>'); // {"content": "<s>"} form
  assert.equal(t.padId, null);
  assert.deepEqual(t.encode('hello world'), [1, 271, 276]);
  assert.deepEqual(t.encode('hold', { addSpecialTokens: false }), [267, 263, 275]);
  // ö is not in the vocabulary: C3 B6 -> <0xC3> <0xB6> (ids 3 + byte).
  const ids = t.encode('hello wörld', { addSpecialTokens: false });
  assert.deepEqual(ids, [271, 272, 3 + 0xc3, 3 + 0xb6, 265, 275]);
  assert.equal(t.decode(ids), 'hello wörld');
  assert.deepEqual(streamDecode(t, ids), ['hello', ' w', '', 'ö', 'r', 'ld', '']);
  // Chat template list: 'default' wins.
  assert.ok(t.chatTemplate!.startsWith("{% for m in messages %}{{ '<|im_start|>'"));
  // The file path form works too.
  assert.deepEqual(loadTokenizer(path.join(FIX, 'sp-tiny', 'tokenizer.json')).encode('hello'), [1, 271]);
  // Overrides win over the config.
  const o = loadTokenizer(path.join(FIX, 'sp-tiny'), { padToken: '</s>', chatTemplate: null });
  assert.equal(o.padId, 2);
  assert.equal(o.chatTemplate, null);
});

// ---- byte-level BPE trainer -----------------------------------------------------------------

const TRAIN_TEXT = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.',
  'Tokenizers split text into tokens. A byte-level tokenizer never needs an unknown token.',
  'function train(corpus, vocabSize) { return merges.map((m) => m.join(" ")); }',
  'for (let i = 0; i < n; i++) { total += values[i] * weights[i]; }',
  'Chimera builds, trains, mixes, evaluates and serves multimodal language models.',
  '你好，世界！今天天气很好。我们训练一个很小的分词器。',
  'Привет, мир! Это маленький корпус для обучения.',
  'Emoji help too 😀😀 👍🏽 🚀🚀🚀 and numbers 12345 67890 3.14159.',
  "It's, we're, they've, I'm, you'll, he'd — contractions matter.",
  '<|endoftext|>Special tokens in the corpus are cut out before counting.<|endoftext|>',
];

const TRAIN_OPTIONS: BpeTrainerOptions = {
  vocabSize: 400,
  specialTokens: ['<|endoftext|>', '<|pad|>', '<|im_start|>', '<|im_end|>'],
  bosToken: '<|endoftext|>',
  eosToken: '<|im_end|>',
  padToken: '<|pad|>',
  addBosToken: true,
  chatTemplate: builtinChatTemplates.chatml,
  minFrequency: 2,
};

function trainFixture(): ReturnType<typeof trainByteLevelBpe> {
  const docs: string[] = [];
  for (let rep = 0; rep < 4; rep++) docs.push(...TRAIN_TEXT);
  return trainByteLevelBpe(docs, TRAIN_OPTIONS);
}

test('bpe trainer: deterministic, independent of corpus order, matches the committed fixture', () => {
  const a = trainFixture();
  const shuffled: string[] = [];
  for (let rep = 0; rep < 4; rep++) shuffled.push(...[...TRAIN_TEXT].reverse());
  const b = trainByteLevelBpe(shuffled, TRAIN_OPTIONS);
  assert.equal(JSON.stringify(b), JSON.stringify(a));
  assert.equal(a.vocabSize, 400);
  assert.equal(a.merges, 400 - 4 - 256);
  const dir = path.join(FIX, 'bytelevel-tiny');
  if (process.env['CHIMERA_REGEN_TOKENIZER_FIXTURES'] === '1') saveTokenizerFiles(dir, a);
  const committed = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  assert.deepEqual(committed, JSON.parse(JSON.stringify(a.tokenizerJson)), 'retrained tokenizer.json differs from the fixture');
  const committedConfig = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  assert.deepEqual(committedConfig, JSON.parse(JSON.stringify(a.tokenizerConfig)));
  // Layout: specials, then the 256 byte symbols in byte order.
  const vocab = (a.tokenizerJson['model'] as JsonObject)['vocab'] as Record<string, number>;
  assert.equal(vocab['<|endoftext|>'], 0);
  assert.equal(vocab[BYTE_TO_CHAR[0x20]!], 4 + 0x20);
  assert.equal(vocab['Ġ'], 4 + 0x20);
  const merges = (a.tokenizerJson['model'] as JsonObject)['merges'] as string[];
  assert.ok(!merges.some((m) => m.includes('<|')), 'special tokens leaked into merges');
});

test('bpe trainer: the fixture loads and round-trips unicode', () => {
  const t = loadTokenizer(path.join(FIX, 'bytelevel-tiny'));
  assert.equal(t.vocabSize, 400);
  assert.deepEqual([t.bosId, t.eosId, t.padId, t.unkId], [0, 3, 1, null]);
  const raw = new HfTokenizer(
    JSON.parse(fs.readFileSync(path.join(FIX, 'bytelevel-tiny', 'tokenizer.json'), 'utf8')),
    JSON.parse(fs.readFileSync(path.join(FIX, 'bytelevel-tiny', 'tokenizer_config.json'), 'utf8')),
  );
  const texts = [...CORPUS, ...fuzzCorpus(200, 42), '\u0000\u0001\u007f control', 'a'.repeat(300), '🦙'.repeat(50)];
  for (const s of texts) {
    const ids = t.encode(s);
    assert.equal(ids[0], 0, 'bos first');
    assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 400));
    assert.deepEqual(ids, (raw.encode(s) as { ids: number[] }).ids, `wrapper and library agree on ${JSON.stringify(s)}`);
    assert.equal(t.decode(ids, { skipSpecialTokens: true }), s, `round trip ${JSON.stringify(s)}`);
    assert.deepEqual(t.encode(s, { addSpecialTokens: false }), ids.slice(1));
    checkStream(t, ids, s, JSON.stringify(s));
  }
  // Learned tokens are used: frequent words cost fewer tokens than bytes.
  const n = t.encode('the quick brown fox', { addSpecialTokens: false }).length;
  assert.ok(n < 12, `expected merges to shorten the text, got ${n} tokens for 19 bytes`);
  // Special token strings are single ids.
  assert.deepEqual(t.encode('<|im_start|>user', { addSpecialTokens: false }).slice(0, 1), [2]);
  // Lone surrogates are not UTF-8: they come back as U+FFFD, like TextEncoder.
  assert.equal(t.decode(t.encode('a\ud800b', { addSpecialTokens: false })), 'a\ufffdb');
});

test('bpe trainer: gpt2 pre-tokenizer, tiny corpus, early stop, errors', () => {
  const g = trainByteLevelBpe(['hello hello hello world world', 'héllo wörld ✓'], { vocabSize: 300, preTokenizer: 'gpt2', minFrequency: 1 });
  const t = tokenizerFromJson(g.tokenizerJson, g.tokenizerConfig);
  assert.equal(t.bosId, null);
  for (const s of ['hello world', ' héllo  wörld ✓ 你好', 'x']) {
    const ids = t.encode(s);
    assert.equal(t.decode(ids), s);
  }
  assert.deepEqual(t.encode('hello', { addSpecialTokens: true }), t.encode('hello', { addSpecialTokens: false }));
  assert.equal(t.encode(' hello').length, 1);
  // Not enough pairs to fill the vocabulary: stops early.
  const small = trainByteLevelBpe(['abab'], { vocabSize: 1000, minFrequency: 1 });
  assert.equal(small.vocabSize, 256 + small.merges);
  assert.ok(small.merges >= 1 && small.merges <= 3);
  assert.throws(() => trainByteLevelBpe(['x'], { vocabSize: 100 }), /vocabSize 100 must be an integer in \[256,/);
  assert.throws(() => trainByteLevelBpe(['x'], { vocabSize: 300, bosToken: '<s>' }), /bosToken "<s>" is not in specialTokens/);
  assert.throws(() => trainByteLevelBpe(['x'], { vocabSize: 300, specialTokens: ['a', 'a'] }), /duplicates/);
  assert.throws(() => trainByteLevelBpe([1 as unknown as string], { vocabSize: 300 }), /corpus item 0 is number/);
});

test('bpe trainer: save + load round trip through files', () => {
  const dir = tmpDir();
  const tr = trainByteLevelBpe(fuzzCorpus(300, 5), { vocabSize: 500, specialTokens: ['<eos>'], eosToken: '<eos>', addEosToken: true });
  saveTokenizerFiles(dir, tr);
  const t = loadTokenizer(dir);
  assert.equal(t.vocabSize, tr.vocabSize);
  const ids = t.encode('Hello 世界 🚀');
  assert.equal(ids.at(-1), t.eosId);
  assert.equal(t.decode(ids, { skipSpecialTokens: true }), 'Hello 世界 🚀');
  assert.equal(t.decode(ids), 'Hello 世界 🚀<eos>');
});

// ---- chat templates -------------------------------------------------------------------------

const CHAT = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi there' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'What is 2+2?' },
];

test('chat template: LLaMA-2 style', () => {
  const out = applyChatTemplate(builtinChatTemplates.llama2, CHAT, { bosToken: '<s>', eosToken: '</s>' });
  assert.equal(out, '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi there [/INST] Hello! </s><s>[INST] What is 2+2? [/INST]');
  assert.equal(applyChatTemplate(builtinChatTemplates.llama2, CHAT.slice(1, 2), { bosToken: '<s>', eosToken: '</s>' }), '<s>[INST] Hi there [/INST]');
  assert.throws(
    () => applyChatTemplate(builtinChatTemplates.llama2, [CHAT[1]!, CHAT[1]!]),
    /chat template \(chat_template\): render error: llama2 template: roles must alternate/,
  );
  // Rendered with the tokenizer's own template and tokens, then encoded without adding a second BOS.
  const t = llama2();
  const text = applyTokenizerChatTemplate(t, CHAT);
  assert.equal(text, out);
  const ids = t.encode(text, { addSpecialTokens: false });
  assert.deepEqual(ids.slice(0, 4), [1, 518, 25580, 29962]);
  assert.equal(ids.filter((i) => i === 1).length, 2);
  assert.equal(ids.filter((i) => i === 2).length, 1);
  // Legacy LLaMA-2 prepends ▁ to text after a special token: "<s>[INST]" comes back as "<s> [INST]" (as in HF).
  assert.equal(t.decode(ids), out.replaceAll('<s>[INST]', '<s> [INST]'));
});

test('chat template: ChatML', () => {
  const t = builtinChatTemplates.chatml;
  assert.equal(
    applyChatTemplate(t, CHAT, { addGenerationPrompt: true }),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n' +
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(applyChatTemplate(t, CHAT.slice(1, 2)), '<|im_start|>user\nHi there<|im_end|>\n');
  // With the trained fixture, the ChatML markers are single special ids.
  const tok = loadTokenizer(path.join(FIX, 'bytelevel-tiny'));
  const ids = tok.encode(applyTokenizerChatTemplate(tok, CHAT.slice(1, 2), { addGenerationPrompt: true }), { addSpecialTokens: false });
  assert.deepEqual(ids.filter((i) => i === 2 || i === 3), [2, 3, 2]);
});

test('chat template: Vicuna style', () => {
  const t = builtinChatTemplates.vicuna;
  assert.equal(
    applyChatTemplate(t, CHAT, { addGenerationPrompt: true, eosToken: '</s>' }),
    'Be brief. USER: Hi there ASSISTANT: Hello!</s>USER: What is 2+2? ASSISTANT:',
  );
  assert.equal(
    applyChatTemplate(t, CHAT.slice(1, 2), { addGenerationPrompt: true }),
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: Hi there ASSISTANT:",
  );
  assert.throws(() => applyChatTemplate(t, [{ role: 'tool', content: 'x' }]), /render error: vicuna template: unknown role tool/);
});

test('chat template: extra variables, reuse, and clear errors', () => {
  const ct = new ChatTemplate('{{ greeting }}, {{ messages | length }} messages{% if add_generation_prompt %}!{% endif %}', 'greet');
  assert.equal(ct.render(CHAT, { extra: { greeting: 'Hey' }, addGenerationPrompt: true }), 'Hey, 4 messages!');
  assert.equal(ct.render([], { extra: { greeting: 'Yo' } }), 'Yo, 0 messages');
  assert.throws(() => new ChatTemplate('{% for m in %}{% endfor %}', 'broken'), /chat template \(broken\): parse error: /);
  assert.throws(() => applyChatTemplate('{% if x %}', []), /chat template \(chat_template\): parse error: /);
  assert.throws(() => applyChatTemplate('{{ messages[0].content.nope() }}', CHAT), /render error: /);
  assert.throws(() => applyChatTemplate(builtinChatTemplates.chatml, [{ role: 3 as unknown as string, content: 'x' }]), /messages\[0\]\.role must be a string/);
  assert.throws(() => applyChatTemplate(builtinChatTemplates.chatml, [{ role: 'user' } as never]), /messages\[0\]\.content is missing/);
  const noTemplate = tokenizerFromJson(llama2Json(), { ...LLAMA2_CONFIG, chat_template: undefined }, { source: 'x/tokenizer.json' });
  assert.throws(() => applyTokenizerChatTemplate(noTemplate, CHAT), /chat template: x\/tokenizer\.json has no chat_template/);
});

// ---- errors ---------------------------------------------------------------------------------

test('errors name the file and what is wrong', () => {
  const dir = tmpDir();
  assert.throws(() => loadTokenizer(path.join(dir, 'missing')), (e: Error) => e.message.startsWith(`tokenizer: ${path.join(dir, 'missing')}: cannot read (ENOENT)`));
  assert.throws(() => loadTokenizer(dir), new RegExp(`tokenizer: ${dir}/tokenizer\\.json: cannot read \\(ENOENT\\)`));
  const write = (name: string, text: string): string => {
    const d = fs.mkdtempSync(path.join(dir, name));
    fs.writeFileSync(path.join(d, 'tokenizer.json'), text);
    return d;
  };
  const bad = write('badjson', '{"model": {');
  assert.throws(() => loadTokenizer(bad), new RegExp(`tokenizer: ${bad}/tokenizer\\.json: not valid JSON`));
  assert.throws(() => loadTokenizer(write('arr', '[]')), /tokenizer\.json: expected a JSON object/);
  assert.throws(() => loadTokenizer(write('nomodel', '{"added_tokens": []}')), /tokenizer\.json: missing "model" object/);
  const base = JSON.parse(fs.readFileSync(path.join(FIX, 'sp-tiny', 'tokenizer.json'), 'utf8')) as JsonObject;
  const mutate = (f: (j: JsonObject) => void): JsonObject => {
    const j = JSON.parse(JSON.stringify(base)) as JsonObject;
    f(j);
    return j;
  };
  const model = (j: JsonObject): JsonObject => j['model'] as JsonObject;
  assert.throws(() => tokenizerFromJson(mutate((j) => (model(j)['merges'] = [...(model(j)['merges'] as string[]), 'zzz_unknown ▁t'])), {}, { source: 'm.json' }),
    /tokenizer: m\.json: model\.merges\[10\] \("zzz_unknown" \+ "▁t"\) uses "zzz_unknown", which is not in model\.vocab/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (model(j)['merges'] = ['nospace'])), {}, { source: 'm.json' }), /model\.merges\[0\] = "nospace" is not "left right"/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (model(j)['merges'] = [['▁', 'h'], ['h', 'x']])), {}, { source: 'm.json' }), /model\.merges\[1\] \("h" \+ "x"\) uses "x"/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (model(j)['merges'] = [['e', 'h']])), {}, { source: 'm.json' }), /model\.merges\[0\] \("e" \+ "h"\) uses "eh"/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (model(j)['vocab'] = [1, 2])), {}, { source: 'm.json' }), /model\.vocab must be an object/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (j['added_tokens'] = [{ id: -1, content: 'x' }])), {}, { source: 'm.json' }), /added_tokens\[0\] must be/);
  assert.throws(() => tokenizerFromJson(mutate((j) => ((model(j)['vocab'] as JsonObject)['dup'] = 5)), {}, { source: 'm.json' }), /model\.vocab: id 5 is used by both/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (model(j)['type'] = 'Magic')), {}, { source: 'm.json' }), /unsupported model\.type "Magic"/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (j['decoder'] = { nope: 1 })), {}, { source: 'm.json' }), /"decoder" must be null or an object with a string "type"/);
  assert.throws(() => tokenizerFromJson(mutate((j) => (j['decoder'] = { type: 'Mystery' })), {}, { source: 'm.json' }), /tokenizer: m\.json: @huggingface\/tokenizers rejected it: Unknown Decoder type: Mystery/);
  assert.throws(() => tokenizerFromJson(base, { bos_token: '<bos>' }, { source: 'm.json', configSource: 'c.json' }), /tokenizer: c\.json: bos_token "<bos>" is not in the vocabulary of m\.json/);
  assert.throws(() => tokenizerFromJson(base, { add_eos_token: true }, { source: 'm.json', configSource: 'c.json' }), /c\.json: add_eos_token is true but there is no eos_token/);
  assert.throws(() => tokenizerFromJson(base, { chat_template: 5 }, { source: 'm.json', configSource: 'c.json' }), /c\.json: chat_template must be a string or \[\{name, template\}\]/);
  const cfgDir = write('badcfg', JSON.stringify(base));
  fs.writeFileSync(path.join(cfgDir, 'tokenizer_config.json'), '{oops');
  assert.throws(() => loadTokenizer(cfgDir), new RegExp(`tokenizer: ${cfgDir}/tokenizer_config\\.json: not valid JSON`));
  const t = llama2();
  assert.equal(t.decode([]), '');
  assert.throws(() => t.decode([5, 32000]), /tokenizer\.decode: .*ids\[1\] = 32000 is not a token id \(vocabSize 32000\)/);
  assert.throws(() => t.decode([1.5]), /ids\[0\] = 1\.5 is not a token id/);
  assert.throws(() => t.encode(5 as unknown as string), /text must be a string/);
});

test('special_tokens_map.json and chat_template.jinja next to tokenizer.json are used', () => {
  const dir = tmpDir();
  fs.copyFileSync(path.join(FIX, 'sp-tiny', 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ bos_token: '<s>', eos_token: { content: '</s>' }, pad_token: '<unk>' }));
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{{ bos_token }}{{ messages[0].content }}');
  const t = loadTokenizer(dir);
  assert.deepEqual([t.bosId, t.eosId, t.padId], [1, 2, 0]);
  assert.equal(applyTokenizerChatTemplate(t, [{ role: 'user', content: 'hi' }]), '<s>hi');
  // Without a config the post-processor's leading special token is the BOS.
  const bare = tokenizerFromJson(JSON.parse(fs.readFileSync(path.join(FIX, 'sp-tiny', 'tokenizer.json'), 'utf8')));
  assert.equal(bare.bosId, 1);
  assert.equal(bare.eosId, null);
});
