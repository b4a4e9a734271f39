// The built-in multimodal corpus: scenes composed on a canvas with known boxes, in two domains
// for weight mixing — 'real' (Fashion-MNIST photographs, tinted and placed) and 'synthetic'
// (rendered shapes) — plus rendered words for text tasks, and every task of tasks.ts generated
// over them. Sample i of (seed, split) is a pure function of those three (random access), and
// splits draw real images from disjoint Fashion-MNIST images (fashion.ts).

import { Rng } from '../engine/rng.ts';
import { blitMask, type Color, drawText, fillCircle, fillPolygon, fillRect, newCanvas, textSize } from './canvas.ts';
import { FASHION_CLASSES, FASHION_PLURALS, loadFashion } from './fashion.ts';
import { boxesText, boxText, groundedText, pointText, TASK_NAMES, TEMPLATES, type TaskName } from './tasks.ts';
import { type Box, type Domain, IMAGE_PLACEHOLDER, type RgbImage, type Split, type Turn } from './types.ts';

export const COLORS: Readonly<Record<string, Color>> = {
  red: [0.9, 0.12, 0.1], green: [0.1, 0.72, 0.2], blue: [0.15, 0.3, 0.95], yellow: [0.95, 0.88, 0.1],
  purple: [0.6, 0.2, 0.8], orange: [1, 0.55, 0.05], white: [0.96, 0.96, 0.96],
};
export const COLOR_NAMES = Object.keys(COLORS);

const BACKGROUNDS: Readonly<Record<string, Color>> = {
  black: [0.04, 0.04, 0.04], grey: [0.38, 0.38, 0.38], 'dark blue': [0.05, 0.08, 0.28], brown: [0.3, 0.18, 0.08],
};
const BACKGROUND_NAMES = Object.keys(BACKGROUNDS);

export const SHAPES = ['circle', 'square', 'triangle', 'diamond'] as const;
const SHAPE_PLURALS = ['circles', 'squares', 'triangles', 'diamonds'] as const;

export const WORDS = ['CAT', 'DOG', 'SUN', 'MAP', 'BOX', 'CUP', 'HAT', 'PEN', 'KEY', 'BUS', 'CAR', 'EGG', 'FOX', 'OWL', 'ZOO', 'JAM', 'ICE', 'TEA', 'RUN', 'SKY', 'AIR', 'BIG', 'HOT', 'NEW', 'OLD', 'YES', 'TOP', 'WAY', 'FLY', 'SEA'] as const;

export type VqaKind = 'what' | 'colour' | 'count' | 'exists';
export const VQA_KINDS: readonly VqaKind[] = ['what', 'colour', 'count', 'exists'];

export interface Keypoint {
  name: string;
  point: [number, number];
}

export interface SceneObject {
  kind: 'shape' | 'item' | 'text';
  /** Shape or clothing name; the word itself for text. */
  name: string;
  plural: string;
  /** Colour name (a key of COLORS). */
  color: string;
  /** Tight pixel box of what was drawn. */
  box: Box;
  keypoints: Keypoint[];
  /** Fashion-MNIST source index (items only). */
  source?: number;
}

export interface Scene {
  image: RgbImage;
  objects: SceneObject[];
  background: string;
  domain: Domain;
}

export interface CorpusSample {
  id: string;
  image: RgbImage;
  /** One human turn (`<image>\n` + instruction) and one gpt answer. */
  conversations: Turn[];
  task: TaskName;
  domain: Domain;
  split: Split;
  /** Pixel boxes of every object in the scene. */
  boxes: Box[];
  objects: SceneObject[];
}

export interface CorpusOptions {
  domain: Domain | 'both';
  split?: Split;
  seed?: number;
  /** Canvas side in pixels (square), 32..1024; default 64. */
  size?: number;
  /** Objects cover at most 1/16 of the canvas (side <= size/4). */
  smallObjects?: boolean;
  /** Tasks drawn from (uniformly); default all. */
  tasks?: readonly TaskName[];
  /** Question kinds for 'vqa'; default all. */
  vqaKinds?: readonly VqaKind[];
  /** Fashion-MNIST source: full set when installed ('auto'), or the committed subset. */
  fashion?: 'auto' | 'subset' | 'full';
}

interface Resolved {
  domain: Domain | 'both'; split: Split; seed: number; size: number; small: boolean;
  tasks: readonly TaskName[]; vqaKinds: readonly VqaKind[]; fashion: 'auto' | 'subset' | 'full';
}

function resolve(o: CorpusOptions): Resolved {
  const size = o.size ?? 64;
  if (!Number.isInteger(size) || size < 32 || size > 1024) throw new Error(`corpus: size must be an integer in [32, 1024], got ${size}`);
  if (!['real', 'synthetic', 'both'].includes(o.domain)) throw new Error(`corpus: domain must be real, synthetic or both, got '${o.domain}'`);
  const tasks = o.tasks ?? TASK_NAMES;
  if (tasks.length === 0) throw new Error('corpus: tasks is empty');
  for (const t of tasks) if (!TASK_NAMES.includes(t)) throw new Error(`corpus: unknown task '${t}' (known: ${TASK_NAMES.join(', ')})`);
  const vqaKinds = o.vqaKinds ?? VQA_KINDS;
  if (vqaKinds.length === 0) throw new Error('corpus: vqaKinds is empty');
  for (const k of vqaKinds) if (!VQA_KINDS.includes(k)) throw new Error(`corpus: unknown VQA kind '${k}' (known: ${VQA_KINDS.join(', ')})`);
  const seed = o.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`corpus: seed must be an integer, got ${seed}`);
  return { domain: o.domain, split: o.split ?? 'train', seed, size, small: o.smallObjects ?? false, tasks, vqaKinds, fashion: o.fashion ?? 'auto' };
}

const SPLIT_CODE: Record<Split, number> = { train: 0x1111, val: 0x2222, test: 0x3333 };

function mix32(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b;
  h = Math.imul(h ^ (h >>> 15), 0xc2b2ae35);
  return (h ^ (h >>> 13)) >>> 0;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;
const article = (w: string): string => (/^[aeiou]/i.test(w) ? 'an' : 'a');
const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const NUMBER_WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six'];

function overlaps(a: Box, b: Box, margin: number): boolean {
  return a[0] < b[2] + margin && b[0] < a[2] + margin && a[1] < b[3] + margin && b[1] < a[3] + margin;
}

/** A free square slot of side s, or null after 60 tries. */
function place(rng: Rng, size: number, s: number, taken: Box[]): Box | null {
  for (let t = 0; t < 60; t++) {
    const x = rng.int(Math.max(1, size - s + 1)), y = rng.int(Math.max(1, size - s + 1));
    const b: Box = [x, y, x + s, y + s];
    if (!taken.some((o) => overlaps(o, b, 2))) return b;
  }
  return null;
}

function drawShape(img: RgbImage, shape: string, slot: Box, c: Color): { box: Box; keypoints: Keypoint[] } | null {
  const [x1, y1, x2, y2] = slot, cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, r = (x2 - x1) / 2;
  let box: Box | null;
  let kp: Keypoint[];
  switch (shape) {
    case 'circle':
      box = fillCircle(img, cx, cy, r, c);
      kp = [{ name: 'top', point: [cx, y1] }, { name: 'right', point: [x2, cy] }, { name: 'bottom', point: [cx, y2] }, { name: 'left', point: [x1, cy] }];
      break;
    case 'square':
      box = fillRect(img, slot, c);
      kp = [{ name: 'top left', point: [x1, y1] }, { name: 'top right', point: [x2, y1] }, { name: 'bottom right', point: [x2, y2] }, { name: 'bottom left', point: [x1, y2] }];
      break;
    case 'triangle':
      box = fillPolygon(img, [[cx, y1], [x2, y2], [x1, y2]], c);
      kp = [{ name: 'top', point: [cx, y1] }, { name: 'bottom right', point: [x2, y2] }, { name: 'bottom left', point: [x1, y2] }];
      break;
    default:
      box = fillPolygon(img, [[cx, y1], [x2, cy], [cx, y2], [x1, cy]], c);
      kp = [{ name: 'top', point: [cx, y1] }, { name: 'right', point: [x2, cy] }, { name: 'bottom', point: [cx, y2] }, { name: 'left', point: [x1, cy] }];
  }
  if (box === null) return null;
  return { box, keypoints: [...kp, { name: 'centre', point: [cx, cy] }] };
}

function boxKeypoints(b: Box): Keypoint[] {
  return [
    { name: 'top left', point: [b[0], b[1]] }, { name: 'top right', point: [b[2], b[1]] },
    { name: 'bottom right', point: [b[2], b[3]] }, { name: 'bottom left', point: [b[0], b[3]] },
    { name: 'centre', point: [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2] },
  ];
}

/** Renders one scene: 1–3 objects (1–4 small ones) and, when `words` > 0, that many rendered words. */
export function renderScene(rng: Rng, domain: Domain, o: { size: number; small: boolean; split: Split; fashion: 'auto' | 'subset' | 'full'; words?: number; minObjects?: number }): Scene {
  const size = o.size;
  const bgName = pick(rng, BACKGROUND_NAMES);
  const img = newCanvas(size, size, BACKGROUNDS[bgName]!);
  const objects: SceneObject[] = [];
  const taken: Box[] = [];
  const words = o.words ?? 0;
  // Words first (they need wide slots), then objects.
  const usedWords = new Set<string>();
  for (let w = 0; w < words; w++) {
    let word: string;
    do word = pick(rng, WORDS); while (usedWords.has(word));
    usedWords.add(word);
    const maxScale = Math.max(1, Math.floor((size * (o.small ? 0.25 : 0.6)) / textSize(word, 1)[0]));
    const scale = 1 + rng.int(maxScale);
    const [tw, th] = textSize(word, scale);
    let slot: Box | null = null;
    for (let t = 0; t < 60 && slot === null; t++) {
      const x = rng.int(Math.max(1, size - tw + 1)), y = rng.int(Math.max(1, size - th + 1));
      const b: Box = [x, y, x + tw, y + th];
      if (!taken.some((q) => overlaps(q, b, 2))) slot = b;
    }
    if (slot === null) continue;
    const color = pick(rng, COLOR_NAMES.filter((c) => c !== 'white' || bgName !== 'grey'));
    const box = drawText(img, word, slot[0], slot[1], scale, COLORS[color]!);
    if (box === null) continue;
    taken.push(slot);
    objects.push({ kind: 'text', name: word, plural: word, color, box, keypoints: [] });
  }
  const maxObjects = o.small ? 4 : domain === 'real' ? 3 : 3;
  const want = Math.max(o.minObjects ?? 1, words > 0 ? rng.int(2) : 1 + rng.int(maxObjects));
  const used = new Set<string>();
  const fashion = domain === 'real' ? loadFashion(o.split, o.fashion) : null;
  for (let k = 0; k < want; k++) {
    const lo = o.small ? 0.12 : 0.28, hi = o.small ? 0.25 : 0.5;
    const s = Math.max(6, Math.floor(size * (lo + (hi - lo) * rng.uniform())));
    const slot = place(rng, size, s, taken);
    if (slot === null) break;
    let color: string, name: string, plural: string, src = -1;
    let tries = 0;
    do {
      color = pick(rng, COLOR_NAMES);
      if (fashion) {
        src = rng.int(fashion.count);
        const c = fashion.labels[src]!;
        name = FASHION_CLASSES[c]!; plural = FASHION_PLURALS[c]!;
      } else {
        const si = rng.int(SHAPES.length);
        name = SHAPES[si]!; plural = SHAPE_PLURALS[si]!;
      }
    } while (used.has(`${color} ${name}`) && ++tries < 20);
    if (used.has(`${color} ${name}`)) continue;
    let drawn: { box: Box; keypoints: Keypoint[] } | null;
    if (fashion) {
      const px = fashion.rows * fashion.cols;
      const box = blitMask(img, fashion.images.subarray(src * px, (src + 1) * px), fashion.cols, fashion.rows, slot[0], slot[1], s, s, COLORS[color]!);
      drawn = box && { box, keypoints: boxKeypoints(box) };
    } else {
      drawn = drawShape(img, name, slot, COLORS[color]!);
    }
    if (drawn === null) continue;
    used.add(`${color} ${name}`);
    taken.push(slot);
    objects.push({ kind: fashion ? 'item' : 'shape', name, plural, color, box: drawn.box, keypoints: drawn.keypoints, ...(fashion ? { source: fashion.sourceIndex[src]! } : {}) });
  }
  return { image: img, objects, background: bgName, domain };
}

function where(b: Box, size: number): string {
  const cx = (b[0] + b[2]) / 2 / size, cy = (b[1] + b[3]) / 2 / size;
  const h = cx < 1 / 3 ? 'left' : cx > 2 / 3 ? 'right' : '';
  const v = cy < 1 / 3 ? 'top' : cy > 2 / 3 ? 'bottom' : '';
  return h === '' && v === '' ? 'in the centre' : `at the ${[v, h].filter(Boolean).join(' ')}`;
}

const phrase = (o: SceneObject): string => `${o.color} ${o.name}`;
// Plural-only nouns (trousers) take no article.
const withArticle = (o: SceneObject): string => (o.name === o.plural ? phrase(o) : `${article(o.color)} ${phrase(o)}`);

function listText(xs: string[]): string {
  return xs.length <= 1 ? (xs[0] ?? '') : `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}

/** Question and answer for one VQA kind, or null when the scene does not support it. */
function vqa(rng: Rng, kind: VqaKind, sc: Scene, domain: Domain): [string, string] | null {
  const objs = sc.objects.filter((o) => o.kind !== 'text');
  if (objs.length === 0) return null;
  const names = domain === 'real' ? FASHION_CLASSES : SHAPES;
  const plurals = domain === 'real' ? FASHION_PLURALS : SHAPE_PLURALS;
  switch (kind) {
    case 'what': {
      if (objs.length === 1) return ['What is shown in the image?', objs[0]!.name];
      const uniq = objs.filter((o) => objs.filter((p) => p.color === o.color).length === 1);
      if (uniq.length === 0) return null;
      const o = pick(rng, uniq);
      return [`What is the ${o.color} object?`, o.name];
    }
    case 'colour': {
      const uniq = objs.filter((o) => objs.filter((p) => p.name === o.name).length === 1);
      if (uniq.length === 0) return null;
      const o = pick(rng, uniq);
      return [`What colour is the ${o.name}?`, o.color];
    }
    case 'count': {
      const i = rng.uniform() < 0.25 ? rng.int(names.length) : names.indexOf(pick(rng, objs).name as never);
      const n = objs.filter((o) => o.name === names[i]).length;
      return [`How many ${plurals[i]} are there?`, String(n)];
    }
    case 'exists': {
      if (rng.uniform() < 0.5) return [`Is there ${withArticle(pick(rng, objs))} in the image?`, 'Yes'];
      for (let t = 0; t < 50; t++) {
        const c = pick(rng, COLOR_NAMES), n = pick(rng, names);
        if (!objs.some((o) => o.color === c && o.name === n)) return [`Is there ${article(c)} ${c} ${n} in the image?`, 'No'];
      }
      return null;
    }
  }
}

function makeQA(rng: Rng, task: TaskName, sc: Scene, r: Resolved, domain: Domain): [string, string] | null {
  const S = sc.image.width, H = sc.image.height;
  const objs = sc.objects.filter((o) => o.kind !== 'text');
  const texts = sc.objects.filter((o) => o.kind === 'text');
  const bg = `on ${article(sc.background)} ${sc.background} background`;
  switch (task) {
    case 'vqa': {
      for (let t = 0; t < 8; t++) {
        const qa = vqa(rng, pick(rng, r.vqaKinds), sc, domain);
        if (qa) return [TEMPLATES.vqa(qa[0]), qa[1]];
      }
      return null;
    }
    case 'caption':
      if (!objs.length) return null;
      return [TEMPLATES.caption(), `${cap(listText(objs.map(withArticle)))} ${bg}.`];
    case 'detailed_caption': {
      if (!objs.length) return null;
      const n = objs.length;
      const parts = [`The image shows ${NUMBER_WORDS[n] ?? n} object${n > 1 ? 's' : ''} ${bg}.`];
      for (const o of objs) parts.push(`${cap(withArticle(o))} is ${where(o.box, S)}.`);
      return [TEMPLATES.detailed_caption(), parts.join(' ')];
    }
    case 'rec': {
      if (!objs.length) return null;
      const o = pick(rng, objs);
      return [TEMPLATES.rec(`the ${phrase(o)}`), boxText(o.box, S, H)];
    }
    case 'reg': {
      if (!objs.length) return null;
      const o = pick(rng, objs);
      return [TEMPLATES.reg(boxText(o.box, S, H)), cap(phrase(o))];
    }
    case 'grounded_caption': {
      if (!objs.length) return null;
      const parts = objs.map((o, i) => groundedText(i === 0 ? cap(withArticle(o)) : withArticle(o), [o.box], S, H));
      return [TEMPLATES.grounded_caption(), `${listText(parts)} ${bg}.`];
    }
    case 'detection': {
      if (!objs.length) return null;
      const o = pick(rng, objs);
      return [TEMPLATES.detection(o.plural), boxesText(objs.filter((p) => p.name === o.name).map((p) => p.box), S, H)];
    }
    case 'keypoints': {
      if (!objs.length) return null;
      const o = pick(rng, objs);
      const subject = o.kind === 'shape' ? o.name : phrase(o);
      return [TEMPLATES.keypoints(boxText(o.box, S, H), subject), o.keypoints.map((k) => `<p>${k.name}</p> ${pointText(k.point, S, H)}`).join(' ')];
    }
    case 'text_detection':
      if (!texts.length) return null;
      return [TEMPLATES.text_detection(), texts.map((t) => groundedText(t.name, [t.box], S, H)).join(' ')];
    case 'ocr_vqa': {
      if (!texts.length) return null;
      const t = pick(rng, texts);
      const q = texts.length === 1 ? 'What word is written in the image?' : `What word is written in ${t.color}?`;
      if (texts.length > 1 && texts.filter((x) => x.color === t.color).length > 1) return null;
      return [TEMPLATES.vqa(q), t.name];
    }
  }
}

/** Sample `index` of the corpus described by `opts` (deterministic in seed, split, index). */
export function makeSample(index: number, opts: CorpusOptions): CorpusSample {
  if (!Number.isSafeInteger(index) || index < 0) throw new Error(`corpus: index must be a non-negative integer, got ${index}`);
  return sampleOf(index, resolve(opts));
}

function sampleOf(index: number, r: Resolved): CorpusSample {
  const domain: Domain = r.domain === 'both' ? (index % 2 === 0 ? 'real' : 'synthetic') : r.domain;
  const base = mix32(mix32(r.seed >>> 0, Math.floor(r.seed / 2 ** 32)), SPLIT_CODE[r.split]);
  for (let attempt = 0; attempt < 32; attempt++) {
    const rng = new Rng(mix32(mix32(base, index), attempt));
    const task = pick(rng, r.tasks);
    const textTask = task === 'text_detection' || task === 'ocr_vqa';
    const sc = renderScene(rng, domain, { size: r.size, small: r.small, split: r.split, fashion: r.fashion, words: textTask ? 1 + rng.int(2) : 0 });
    const qa = makeQA(rng, task, sc, r, domain);
    if (qa === null) continue;
    return {
      id: `${domain}-${r.split}-${r.seed}-${index}`,
      image: sc.image,
      conversations: [{ from: 'human', value: `${IMAGE_PLACEHOLDER}\n${qa[0]}` }, { from: 'gpt', value: qa[1] }],
      task, domain, split: r.split,
      boxes: sc.objects.map((o) => o.box),
      objects: sc.objects,
    };
  }
  throw new Error(`corpus: could not compose a sample for index ${index} (tasks ${r.tasks.join(',')}, size ${r.size})`);
}

/** Samples 0..n-1 (n may be Infinity for an endless stream). */
export function* corpusSamples(n: number, opts: CorpusOptions): Generator<CorpusSample> {
  if (!(n >= 0)) throw new Error(`corpus: n must be >= 0, got ${n}`);
  const r = resolve(opts);
  for (let i = 0; i < n; i++) yield sampleOf(i, r);
}
