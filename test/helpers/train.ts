// Shared material of the trainer tests: a small on-disk conversation corpus (PNG + JSONL),
// in-memory samples, and bitwise comparison of parameter snapshots.

import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { untracked } from '../../src/engine/tensor.ts';
import type { VlmModel, VlmSample } from '../../src/models/vlm/model.ts';
import { encodeConversation } from '../../src/train/batches.ts';
import { testImage, tinyTokenizer } from './vlm.ts';

const COLOURS = ['red', 'green', 'blue', 'yellow'];

/** Writes `n` images and a JSONL of one-turn conversations about them; returns the JSONL path. */
export async function writeCorpus(dir: string, n: number, name = 'train'): Promise<string> {
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const img = testImage(96 + 8 * (i % 3), 80, i + 1);
    const u8 = Buffer.alloc(img.data.length);
    for (let k = 0; k < u8.length; k++) u8[k] = Math.round(img.data[k]! * 255);
    const rel = `images/${name}-${i}.png`;
    await sharp(u8, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toFile(path.join(dir, rel));
    lines.push(JSON.stringify({ id: `${name}-${i}`, image: rel, conversations: [{ from: 'human', value: '<image>\nWhat colour is it?' }, { from: 'gpt', value: `${COLOURS[i % 4]} circle` }] }));
  }
  const file = path.join(dir, `${name}.jsonl`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** `n` in-memory samples (one image each) tokenised with the model's template. */
export function memorySamples(model: VlmModel, n: number): VlmSample[] {
  const tok = tinyTokenizer();
  return Array.from({ length: n }, (_, i) => {
    const image = untracked(() => model.prepareImage(testImage(96, 80, i + 1), 'high'));
    const enc = encodeConversation(model, tok, [{ from: 'human', value: '<image>\nWhat colour is it?' }, { from: 'gpt', value: `${COLOURS[i % 4]} circle` }], 1);
    return { ids: enc.ids, labels: enc.labels, images: [image] };
  });
}

/** Keys whose values differ bitwise between two snapshots (and keys present in only one). */
export function bitwiseDiff(a: ReadonlyMap<string, Float32Array>, b: ReadonlyMap<string, Float32Array>): string[] {
  const out: string[] = [];
  for (const [k, x] of a) {
    const y = b.get(k);
    if (y === undefined || y.length !== x.length) { out.push(k); continue; }
    const xi = new Uint32Array(x.buffer, x.byteOffset, x.length), yi = new Uint32Array(y.buffer, y.byteOffset, y.length);
    for (let i = 0; i < xi.length; i++) if (xi[i] !== yi[i]) { out.push(k); break; }
  }
  for (const k of b.keys()) if (!a.has(k)) out.push(k);
  return out;
}

const made: string[] = [];
process.on('exit', () => { for (const d of made) fs.rmSync(d, { recursive: true, force: true }); });

/** A fresh temporary folder, removed when the process exits. */
export function tmpDir(tag: string): string {
  const d = fs.mkdtempSync(path.join(process.env['TMPDIR'] ?? '/tmp', `chimera-${tag}-`));
  made.push(d);
  return d;
}
