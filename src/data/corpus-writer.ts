// Writes corpus samples as a LLaVA-style JSONL (one record a line) plus one PNG per sample, so
// conversations.ts reads them back. Files are written to temporary names and renamed, the JSONL
// last, so an interrupted run never leaves a JSONL that names missing images.

import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { CorpusSample } from './corpus.ts';
import type { RgbImage } from './types.ts';

/** Float [0,1] HWC → 8-bit PNG bytes. */
export async function encodePng(img: RgbImage): Promise<Buffer> {
  const n = img.width * img.height * 3;
  if (img.data.length !== n) throw new Error(`encodePng: data has ${img.data.length} values, ${img.width}x${img.height}x3 needs ${n}`);
  const u8 = Buffer.alloc(n);
  for (let i = 0; i < n; i++) u8[i] = Math.round(Math.min(1, Math.max(0, img.data[i]!)) * 255);
  return sharp(u8, { raw: { width: img.width, height: img.height, channels: 3 } }).png({ compressionLevel: 9 }).toBuffer();
}

/** The JSONL record of a sample (image path relative to the JSONL's folder). */
export function sampleRecord(s: CorpusSample, imagePath: string): Record<string, unknown> {
  return {
    id: s.id, image: imagePath, conversations: s.conversations, task: s.task, domain: s.domain, split: s.split,
    width: s.image.width, height: s.image.height, boxes: s.boxes,
  };
}

export interface WriteCorpusResult {
  file: string;
  count: number;
  bytes: number;
}

/** Writes `dir/<name>.jsonl` and `dir/images/<id>.png`. */
export async function writeCorpus(dir: string, samples: Iterable<CorpusSample>, name = 'data'): Promise<WriteCorpusResult> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`writeCorpus: file name '${name}' must be letters, digits, '_', '.' or '-'`);
  const imgDir = path.join(dir, 'images');
  fs.mkdirSync(imgDir, { recursive: true });
  const file = path.join(dir, `${name}.jsonl`);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  let count = 0, bytes = 0;
  try {
    for (const s of samples) {
      if (!/^[\w.-]+$/.test(s.id)) throw new Error(`writeCorpus: sample id '${s.id}' is not a safe file name`);
      const rel = `images/${s.id}.png`;
      const png = await encodePng(s.image);
      const ptmp = path.join(imgDir, `${s.id}.png.tmp-${process.pid}`);
      fs.writeFileSync(ptmp, png);
      fs.renameSync(ptmp, path.join(dir, rel));
      const line = `${JSON.stringify(sampleRecord(s, rel))}\n`;
      fs.writeSync(fd, line);
      bytes += png.length + Buffer.byteLength(line);
      count++;
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  return { file, count, bytes };
}
