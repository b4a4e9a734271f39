// The built-in corpus: Fashion-MNIST subset, determinism, disjoint splits, small objects,
// task answers consistent with the drawn boxes, and the JSONL+PNG writer read back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConversations } from '../src/data/conversations.ts';
import { corpusSamples, makeSample } from '../src/data/corpus.ts';
import { writeCorpus } from '../src/data/corpus-writer.ts';
import { loadFashion } from '../src/data/fashion.ts';
import { encodeBox, iou, parseBoxes, parseFirstBox, parseGrounded, TASK_NAMES } from '../src/data/tasks.ts';
import { decodeImage } from '../src/io/image.ts';

test('Fashion-MNIST subset: 800/100/100 images, 10 balanced classes, disjoint splits', () => {
  const tr = loadFashion('train', 'subset'), va = loadFashion('val', 'subset'), te = loadFashion('test', 'subset');
  assert.deepEqual([tr.count, va.count, te.count], [800, 100, 100]);
  assert.equal(tr.rows, 28);
  for (const s of [tr, va, te]) {
    const per = new Array(10).fill(0);
    for (const l of s.labels) per[l]++;
    assert.ok(per.every((n) => n === s.count / 10));
  }
  const a = new Set(tr.sourceIndex), b = new Set(va.sourceIndex);
  assert.ok([...va.sourceIndex, ...te.sourceIndex].every((i) => !a.has(i)) && [...te.sourceIndex].every((i) => !b.has(i)));
});

test('samples are deterministic in (seed, split, index) and differ across seeds', () => {
  const o = { domain: 'both' as const, seed: 5, size: 64 };
  const x = makeSample(7, o), y = makeSample(7, o), z = makeSample(7, { ...o, seed: 6 });
  assert.deepEqual(x.conversations, y.conversations);
  assert.deepEqual(x.image.data, y.image.data);
  assert.notDeepEqual(x.image.data, z.image.data);
  assert.deepEqual([...corpusSamples(3, o)].map((s) => s.id), ['real-train-5-0', 'synthetic-train-5-1', 'real-train-5-2']);
  assert.throws(() => makeSample(0, { domain: 'both', size: 8 }), /size/);
  assert.throws(() => makeSample(0, { domain: 'both', tasks: ['nope' as never] }), /unknown task/);
});

test('splits draw from disjoint Fashion-MNIST images', () => {
  const used = (split: 'train' | 'val' | 'test'): Set<number> => {
    const s = new Set<number>();
    for (const smp of corpusSamples(60, { domain: 'real', split, seed: 1, fashion: 'subset' })) for (const o of smp.objects) if (o.source !== undefined) s.add(o.source);
    return s;
  };
  const tr = used('train'), va = used('val'), te = used('test');
  assert.ok(tr.size > 20 && va.size > 5);
  for (const i of va) assert.ok(!tr.has(i) && !te.has(i));
  for (const i of te) assert.ok(!tr.has(i));
});

test('every task over both domains; answers agree with the drawn boxes', () => {
  for (const domain of ['real', 'synthetic'] as const) {
    for (const task of TASK_NAMES) {
      for (const s of corpusSamples(6, { domain, seed: 2, size: 96, tasks: [task] })) {
        assert.equal(s.task, task);
        assert.equal(s.conversations.length, 2);
        assert.ok(s.conversations[0]!.value.startsWith('<image>\n'));
        const ans = s.conversations[1]!.value, W = s.image.width, H = s.image.height;
        for (const b of s.boxes) assert.ok(b[0] >= 0 && b[1] >= 0 && b[2] <= W && b[3] <= H && b[2] > b[0] && b[3] > b[1]);
        const norm = s.objects.map((o) => encodeBox(o.box, W, H));
        const best = (nb: number[]): number => Math.max(...norm.map((g) => iou(nb, g)));
        if (task === 'rec' || task === 'detection') for (const nb of parseBoxes(ans)) assert.ok(best(nb) > 0.7, `${task}: ${ans}`); // 2-decimal rounding
        if (task === 'grounded_caption' || task === 'text_detection') {
          const g = parseGrounded(ans);
          assert.ok(g.length >= 1);
          for (const p of g) assert.ok(best(p.boxes[0]!) > 0.7, ans);
        }
        if (task === 'reg') {
          const nb = parseFirstBox(s.conversations[0]!.value)!;
          const o = s.objects[norm.findIndex((g) => iou(nb, g) > 0.7)]!;
          assert.equal(ans.toLowerCase(), `${o.color} ${o.name}`);
        }
        if (task === 'keypoints') assert.ok(parseGrounded(ans).every((p) => p.points.length === 1));
        if (task === 'ocr_vqa') assert.ok(s.objects.some((o) => o.kind === 'text' && o.name === ans));
      }
    }
  }
});

test('small-object split: every object covers at most 1/16 of the canvas', () => {
  for (const s of corpusSamples(40, { domain: 'both', seed: 3, size: 128, smallObjects: true })) {
    for (const b of s.boxes) assert.ok((b[2] - b[0]) * (b[3] - b[1]) <= (128 * 128) / 16, `${b}`);
  }
});

test('VQA yes/no answers are balanced and counts are right', () => {
  let yes = 0, no = 0;
  for (const s of corpusSamples(200, { domain: 'synthetic', seed: 4, tasks: ['vqa'], vqaKinds: ['exists', 'count'] })) {
    const a = s.conversations[1]!.value, q = s.conversations[0]!.value;
    if (a === 'Yes') yes++; else if (a === 'No') no++;
    const m = /How many (\w+) are there/.exec(q);
    if (m) assert.equal(Number(a), s.objects.filter((o) => `${o.plural}` === m[1]).length);
  }
  assert.ok(yes > 30 && no > 30 && Math.abs(yes - no) < 0.3 * (yes + no), `yes ${yes} no ${no}`);
});

test('writer: JSONL + PNG read back by the conversation loader, pixels within 1/255', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-corpus-'));
  const samples = [...corpusSamples(6, { domain: 'both', seed: 9, size: 48 })];
  const r = await writeCorpus(dir, samples, 'val');
  assert.equal(r.count, 6);
  const { records } = await loadConversations(r.file);
  assert.equal(records.length, 6);
  assert.deepEqual(records[2]!.conversations, samples[2]!.conversations);
  assert.equal(records[2]!.raw['task'], samples[2]!.task);
  const img = await decodeImage(records[2]!.images[0]!);
  assert.equal(img.width, 48);
  let maxErr = 0;
  for (let i = 0; i < img.data.length; i++) maxErr = Math.max(maxErr, Math.abs(img.data[i]! - samples[2]!.image.data[i]!));
  assert.ok(maxErr <= 0.5 / 255 + 1e-6, `max error ${maxErr}`);
  assert.ok(!fs.readdirSync(dir).some((f) => f.includes('.tmp-')));
  fs.rmSync(dir, { recursive: true });
});
