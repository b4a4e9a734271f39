// LLaVA-style conversation datasets: JSONL (streamed line by line) or a JSON array (read whole,
// capped). A record is {"id", "image" | "images", "conversations": [{"from", "value"}], ...}
// with one `<image>` placeholder per image. Every problem is an error naming file and line;
// with `skipInvalid` the record is skipped and counted in a SkipReport instead (never silently).

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { IMAGE_PLACEHOLDER, type Role, type Turn } from './types.ts';

export interface ConversationRecord {
  id: string;
  /** Image paths resolved against the root folder. */
  images: string[];
  conversations: Turn[];
  /** The parsed JSON object, for fields beyond the above (answers, boxes, task, ...). */
  raw: Record<string, unknown>;
  /** Where it came from: 1-based line (JSONL) or 0-based item index (JSON array). */
  source: { file: string; line: number };
}

export interface ConversationOptions {
  /** Folder image paths are relative to; default the data file's folder. */
  root?: string;
  /** Check that every image exists under the root (default true). */
  checkImages?: boolean;
  /** Skip invalid records (counted in the report) instead of throwing. */
  skipInvalid?: boolean;
  /** Allow a final human turn without a gpt answer (evaluation data); default false. */
  allowUnanswered?: boolean;
  /** Largest JSON array file read whole, in bytes (default 256 MiB); JSONL has no limit. */
  maxJsonBytes?: number;
  /** Longest JSONL line in bytes (default 64 MiB). */
  maxLineBytes?: number;
}

export interface SkipReport {
  file: string;
  read: number;
  kept: number;
  skipped: number;
  /** Skips per reason kind (the message up to its first ':' after the location). */
  byReason: Record<string, number>;
  /** The first 20 skip messages in full. */
  examples: string[];
}

export class DatasetError extends Error {}

const DEFAULT_MAX_JSON = 256 * 1024 * 1024;

function newReport(file: string): SkipReport {
  return { file, read: 0, kept: 0, skipped: 0, byReason: Object.create(null) as Record<string, number>, examples: [] };
}

class Invalid extends Error {
  readonly kind: string;
  constructor(kind: string, detail: string) { super(`${kind}: ${detail}`); this.kind = kind; }
}

/** Validates one parsed record; throws Invalid. */
export function validateRecord(obj: unknown, where: { file: string; line: number }, o: ConversationOptions, root: string): ConversationRecord {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new Invalid('not an object', `expected a JSON object, got ${Array.isArray(obj) ? 'an array' : obj === null ? 'null' : typeof obj}`);
  const r = obj as Record<string, unknown>;
  const idv = r['id'];
  const id = typeof idv === 'string' || typeof idv === 'number' ? String(idv) : `${path.basename(where.file)}:${where.line}`;
  let images: string[] = [];
  if (r['image'] !== undefined && r['images'] !== undefined) throw new Invalid('image and images', 'give "image" or "images", not both');
  if (r['image'] !== undefined && r['image'] !== null) {
    if (typeof r['image'] !== 'string' || r['image'] === '') throw new Invalid('bad image', '"image" must be a non-empty string');
    images = [r['image']];
  } else if (r['images'] !== undefined) {
    const a = r['images'];
    if (!Array.isArray(a) || a.some((x) => typeof x !== 'string' || x === '')) throw new Invalid('bad images', '"images" must be an array of non-empty strings');
    images = a as string[];
  }
  const conv = r['conversations'];
  if (!Array.isArray(conv)) throw new Invalid('missing conversations', '"conversations" must be an array of {"from", "value"}');
  if (conv.length === 0) throw new Invalid('empty conversations', '"conversations" is empty');
  const turns: Turn[] = [];
  conv.forEach((t, k) => {
    if (t === null || typeof t !== 'object') throw new Invalid('bad turn', `turn ${k} is not an object`);
    const from = (t as Record<string, unknown>)['from'], value = (t as Record<string, unknown>)['value'];
    if (from !== 'human' && from !== 'gpt') throw new Invalid('bad role', `turn ${k} has "from": ${JSON.stringify(from)}; expected "human" or "gpt"`);
    if (typeof value !== 'string') throw new Invalid('bad turn', `turn ${k} "value" must be a string`);
    const want: Role = k % 2 === 0 ? 'human' : 'gpt';
    if (from !== want) throw new Invalid('roles out of order', `turn ${k} is "${from}" but turns must alternate human, gpt, ... starting with human`);
    turns.push({ from, value });
  });
  if (turns[turns.length - 1]!.from === 'human' && !o.allowUnanswered) throw new Invalid('unanswered', 'the last turn is "human"; every human turn needs a gpt answer');
  let placeholders = 0;
  for (const t of turns) placeholders += t.value.split(IMAGE_PLACEHOLDER).length - 1;
  if (placeholders !== images.length) {
    throw new Invalid('placeholder mismatch', `${placeholders} ${IMAGE_PLACEHOLDER} placeholder${placeholders === 1 ? '' : 's'} but ${images.length} image${images.length === 1 ? '' : 's'}`);
  }
  const resolved = images.map((im) => {
    if (path.isAbsolute(im) || im.split(/[\\/]/).includes('..')) throw new Invalid('unsafe image path', `image path '${im}' must be relative to the root without '..'`);
    const p = path.join(root, im);
    if (o.checkImages !== false) {
      let ok = false;
      try { ok = fs.statSync(p).isFile(); } catch { ok = false; }
      if (!ok) throw new Invalid('missing image', `image '${im}' not found under ${root}`);
    }
    return p;
  });
  return { id, images: resolved, conversations: turns, raw: r, source: where };
}

function handle(e: unknown, where: { file: string; line: number }, o: ConversationOptions, rep: SkipReport, what: string): void {
  if (!(e instanceof Invalid)) throw e;
  const msg = `${where.file}:${what} ${where.line}: ${e.message}`;
  if (!o.skipInvalid) throw new DatasetError(msg);
  rep.skipped++;
  rep.byReason[e.kind] = (rep.byReason[e.kind] ?? 0) + 1;
  if (rep.examples.length < 20) rep.examples.push(msg);
}

/**
 * Streams the records of a JSONL or JSON-array file. Blank JSONL lines are ignored. Throws
 * DatasetError naming file and line; with skipInvalid, fills `report` instead. An empty dataset
 * (nothing kept) is an error either way.
 */
export async function* readConversations(file: string, o: ConversationOptions = {}, report?: SkipReport): AsyncGenerator<ConversationRecord> {
  const rep = report ?? newReport(file);
  rep.file = file;
  const root = o.root ?? path.dirname(file);
  let st: fs.Stats;
  try { st = fs.statSync(file); } catch (e) { throw new DatasetError(`${file}: cannot read: ${(e as Error).message}`); }
  if (!st.isFile()) throw new DatasetError(`${file}: not a regular file`);
  if (o.checkImages !== false && !fs.existsSync(root)) throw new DatasetError(`${file}: image root '${root}' does not exist`);
  // Sniff the first non-space byte: '[' = JSON array, else JSONL.
  const head = Buffer.alloc(256);
  const fd = fs.openSync(file, 'r');
  const nHead = fs.readSync(fd, head, 0, 256, 0);
  fs.closeSync(fd);
  const first = head.subarray(0, nHead).toString('utf8').replace(/^\uFEFF/, '').trimStart()[0];
  if (first === '[') {
    const max = o.maxJsonBytes ?? DEFAULT_MAX_JSON;
    if (st.size > max) throw new DatasetError(`${file}: JSON array file is ${st.size} bytes, over the ${max}-byte limit for whole-file reads; convert it to JSONL (one record a line) to stream it`);
    let arr: unknown;
    try { arr = JSON.parse(fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '')); } catch (e) { throw new DatasetError(`${file}: malformed JSON: ${(e as Error).message}`); }
    if (!Array.isArray(arr)) throw new DatasetError(`${file}: expected a JSON array of records`);
    for (let i = 0; i < arr.length; i++) {
      const where = { file, line: i };
      rep.read++;
      let rec: ConversationRecord | null = null;
      try { rec = validateRecord(arr[i], where, o, root); } catch (e) { handle(e, where, o, rep, 'item'); }
      if (rec) { rep.kept++; yield rec; }
    }
  } else {
    const maxLine = o.maxLineBytes ?? 64 * 1024 * 1024;
    const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    let line = 0;
    try {
      for await (const text of rl) {
        line++;
        const t = (line === 1 ? text.replace(/^\uFEFF/, '') : text).trim();
        if (t === '') continue;
        const where = { file, line };
        rep.read++;
        let rec: ConversationRecord | null = null;
        try {
          if (t.length > maxLine) throw new Invalid('line too long', `${t.length} characters, over the ${maxLine} limit`);
          let obj: unknown;
          try { obj = JSON.parse(t); } catch (e) { throw new Invalid('malformed JSON', (e as Error).message); }
          rec = validateRecord(obj, where, o, root);
        } catch (e) {
          handle(e, where, o, rep, 'line');
        }
        if (rec) { rep.kept++; yield rec; }
      }
    } finally {
      rl.close();
    }
  }
  if (rep.kept === 0) {
    throw new DatasetError(rep.read === 0 ? `${file}: the dataset is empty (no records)` : `${file}: all ${rep.read} records are invalid (${Object.entries(rep.byReason).map(([k, v]) => `${v} ${k}`).join(', ')})`);
  }
}

/** Reads a whole dataset into memory, with its skip report. */
export async function loadConversations(file: string, o: ConversationOptions = {}): Promise<{ records: ConversationRecord[]; report: SkipReport }> {
  const report = newReport(file);
  const records: ConversationRecord[] = [];
  for await (const r of readConversations(file, o, report)) records.push(r);
  return { records, report };
}

/** Counts valid records without keeping them (streams). */
export async function countConversations(file: string, o: ConversationOptions = {}): Promise<SkipReport> {
  const report = newReport(file);
  for await (const _ of readConversations(file, o, report)) { /* count only */ }
  return report;
}
