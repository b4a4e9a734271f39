// The task registry: SPHINX's instruction templates (SPEC §1.11), the padded-square box
// encoding, and robust parsers for boxes, points and grounded phrases in model output.
//
// Box encoding (SPEC §1.11, LLaMA2-Accessory eval_mm/evaluate.py): a pixel box (x1,y1,x2,y2) of
// a W×H image is shifted by the centring pad of the padded square — W>H: y += (W−H)//2;
// H>W: x += (H−W)//2 — then divided by S = max(W,H). Text form `[x1, y1, x2, y2]` with a fixed
// number of decimals (2 by default). Several boxes of one phrase share a bracket, `;`-separated;
// grounded phrases are `<p>phrase</p> [boxes]`; keypoints are `[x, y]`.

import type { Box, NormBox } from './types.ts';

export type TaskName =
  | 'vqa' | 'caption' | 'detailed_caption' | 'rec' | 'reg' | 'grounded_caption'
  | 'detection' | 'keypoints' | 'text_detection' | 'ocr_vqa';

export const TASK_NAMES: readonly TaskName[] = [
  'vqa', 'caption', 'detailed_caption', 'rec', 'reg', 'grounded_caption', 'detection', 'keypoints', 'text_detection', 'ocr_vqa',
];

export function isTaskName(s: string): s is TaskName {
  return (TASK_NAMES as readonly string[]).includes(s);
}

export const SHORT_ANSWER_SUFFIX = '\nAnswer the question using a single word or phrase.';

/** The user-message templates, exactly as SPEC §1.11 (REG as in SPHINX's published examples). */
export const TEMPLATES = {
  vqa: (question: string): string => `${question}${SHORT_ANSWER_SUFFIX}`,
  vizwiz: (question: string): string => `${question} When the provided information is insufficient, respond with 'Unanswerable'.${SHORT_ANSWER_SUFFIX}`,
  rec: (expr: string): string => `Please provide the bounding box coordinate of the region this sentence describes: ${expr}.`,
  reg: (boxText: string): string => `Please provide a short description for this region: ${boxText}.`,
  caption: (): string => 'Provide a one-sentence caption for the provided image.',
  detailed_caption: (): string => 'Generate a detailed description about the image.',
  grounded_caption: (): string => 'Describe the image concisely. Include the bounding box for each mentioned object.',
  detection: (category: string): string => `Detect all ${category} shown in the image.`,
  keypoints: (boxText: string, subject = 'person'): string => `Detect the key points of the ${subject} in the region ${boxText}.`,
  text_detection: (): string => 'Please detect all texts and provide their bounding box coordinate.',
  chart_to_table: (): string => 'Convert this chart to a table.',
} as const;

// ---------------------------------------------------------------------------------------------
// Coordinates.

function checkSize(W: number, H: number): void {
  if (!(Number.isFinite(W) && Number.isFinite(H) && W > 0 && H > 0)) throw new Error(`image size must be positive, got ${W}x${H}`);
}

/** Centring offsets [ox, oy] of a W×H image inside its max(W,H) padded square (integer, floor). */
export function padOffsets(W: number, H: number): [number, number] {
  checkSize(W, H);
  return W > H ? [0, Math.floor((W - H) / 2)] : H > W ? [Math.floor((H - W) / 2), 0] : [0, 0];
}

/** Pixel box → padded-square normalised box (no rounding). */
export function encodeBox(box: Box, W: number, H: number): NormBox {
  const [ox, oy] = padOffsets(W, H);
  const S = Math.max(W, H);
  return [(box[0] + ox) / S, (box[1] + oy) / S, (box[2] + ox) / S, (box[3] + oy) / S];
}

/** Padded-square normalised box → pixel box (the inverse of encodeBox). */
export function decodeBox(nb: NormBox, W: number, H: number): Box {
  const [ox, oy] = padOffsets(W, H);
  const S = Math.max(W, H);
  return [nb[0] * S - ox, nb[1] * S - oy, nb[2] * S - ox, nb[3] * S - oy];
}

export function encodePoint(p: readonly [number, number], W: number, H: number): [number, number] {
  const [ox, oy] = padOffsets(W, H);
  const S = Math.max(W, H);
  return [(p[0] + ox) / S, (p[1] + oy) / S];
}

export function decodePoint(p: readonly [number, number], W: number, H: number): [number, number] {
  const [ox, oy] = padOffsets(W, H);
  const S = Math.max(W, H);
  return [p[0] * S - ox, p[1] * S - oy];
}

export const DEFAULT_DECIMALS = 2;

function fmtNum(v: number, decimals: number): string {
  const c = Math.min(1, Math.max(0, v));
  // toFixed of a clamped value; -0 never printed
  return (c === 0 ? 0 : c).toFixed(decimals);
}

/** `[x1, y1, x2, y2]` of a normalised box, values clamped to [0,1], fixed decimals. */
export function formatNormBox(nb: NormBox, decimals = DEFAULT_DECIMALS): string {
  return `[${nb.map((v) => fmtNum(v, decimals)).join(', ')}]`;
}

/** Several boxes of one phrase in one bracket: `[a, b, c, d; e, f, g, h]`. */
export function formatNormBoxes(nbs: readonly NormBox[], decimals = DEFAULT_DECIMALS): string {
  return `[${nbs.map((nb) => nb.map((v) => fmtNum(v, decimals)).join(', ')).join('; ')}]`;
}

/** Pixel box of a W×H image → its text form. */
export function boxText(box: Box, W: number, H: number, decimals = DEFAULT_DECIMALS): string {
  return formatNormBox(encodeBox(box, W, H), decimals);
}

export function boxesText(boxes: readonly Box[], W: number, H: number, decimals = DEFAULT_DECIMALS): string {
  return formatNormBoxes(boxes.map((b) => encodeBox(b, W, H)), decimals);
}

export function pointText(p: readonly [number, number], W: number, H: number, decimals = DEFAULT_DECIMALS): string {
  const q = encodePoint(p, W, H);
  return `[${fmtNum(q[0], decimals)}, ${fmtNum(q[1], decimals)}]`;
}

/** `<p>phrase</p> [boxes]`. */
export function groundedText(phrase: string, boxes: readonly Box[], W: number, H: number, decimals = DEFAULT_DECIMALS): string {
  return `<p>${phrase}</p> ${boxesText(boxes, W, H, decimals)}`;
}

/** Intersection over union of two boxes in the same coordinates; 0 for empty unions. */
export function iou(a: readonly number[], b: readonly number[]): number {
  const ax1 = Math.min(a[0]!, a[2]!), ax2 = Math.max(a[0]!, a[2]!), ay1 = Math.min(a[1]!, a[3]!), ay2 = Math.max(a[1]!, a[3]!);
  const bx1 = Math.min(b[0]!, b[2]!), bx2 = Math.max(b[0]!, b[2]!), by1 = Math.min(b[1]!, b[3]!), by2 = Math.max(b[1]!, b[3]!);
  const iw = Math.max(0, Math.min(ax2, bx2) - Math.max(ax1, bx1));
  const ih = Math.max(0, Math.min(ay2, by2) - Math.max(ay1, by1));
  const inter = iw * ih;
  const union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
  return union > 0 ? inter / union : 0;
}

// ---------------------------------------------------------------------------------------------
// Parsing model output. Tolerant: spaces anywhere, integers, missing brackets, `;` or `,`
// between boxes, parentheses instead of brackets. Values are clamped to [0,1] and each box is
// reordered so x1 <= x2, y1 <= y2.

const NUM = /[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?/g;

function numbersIn(s: string): number[] {
  return [...s.matchAll(NUM)].map((m) => Number(m[0])).filter((v) => Number.isFinite(v));
}

const clamp01 = (v: number): number => Math.min(1, Math.max(0, v));

function toBox(v: readonly number[]): NormBox {
  const x1 = clamp01(v[0]!), y1 = clamp01(v[1]!), x2 = clamp01(v[2]!), y2 = clamp01(v[3]!);
  return [Math.min(x1, x2), Math.min(y1, y2), Math.max(x1, x2), Math.max(y1, y2)];
}

/** Bracketed groups `[...]` or `(...)`; the whole text when there are none. */
function groups(text: string): string[] {
  const g = [...text.matchAll(/[[(]([^\][()]*)[\])]/g)].map((m) => m[1]!);
  if (g.length > 0) return g;
  // An unclosed bracket: take what follows it.
  const open = text.search(/[[(]/);
  return [open >= 0 ? text.slice(open + 1) : text];
}

/** Boxes per bracket group: `[a,b,c,d; e,f,g,h]` → two boxes in one group. Incomplete boxes are dropped. */
export function parseBoxGroups(text: string): NormBox[][] {
  const out: NormBox[][] = [];
  for (const g of groups(text)) {
    const boxes: NormBox[] = [];
    for (const part of g.split(';')) {
      const v = numbersIn(part);
      for (let i = 0; i + 4 <= v.length; i += 4) boxes.push(toBox(v.slice(i, i + 4)));
    }
    if (boxes.length) out.push(boxes);
  }
  return out;
}

/** Every box in the text, in order. */
export function parseBoxes(text: string): NormBox[] {
  return parseBoxGroups(text).flat();
}

/** The first box in the text, or null. */
export function parseFirstBox(text: string): NormBox | null {
  return parseBoxes(text)[0] ?? null;
}

/** `[x, y]` points in order (bracket groups of 2 numbers, or pairs of loose numbers), clamped to [0,1]. */
export function parsePoints(text: string): [number, number][] {
  const out: [number, number][] = [];
  for (const g of groups(text)) {
    for (const part of g.split(';')) {
      const v = numbersIn(part);
      for (let i = 0; i + 2 <= v.length; i += 2) out.push([clamp01(v[i]!), clamp01(v[i + 1]!)]);
    }
  }
  return out;
}

export interface GroundedPhrase {
  phrase: string;
  boxes: NormBox[];
  /** 2-number items after the phrase (keypoints), when the bracket held points. */
  points: [number, number][];
}

/** `<p>phrase</p> [boxes]` pairs, in order. A phrase with no bracket after it gets no boxes. */
export function parseGrounded(text: string): GroundedPhrase[] {
  const out: GroundedPhrase[] = [];
  const re = /<p>([\s\S]*?)<\/p>\s*(\[[^\]]*\]?)?/g;
  for (const m of text.matchAll(re)) {
    const phrase = m[1]!.trim();
    const br = m[2] ?? '';
    // A bracket whose every `;` part holds 2 numbers is a point; otherwise boxes.
    const isPoints = br !== '' && br.split(';').every((part) => numbersIn(part).length === 2);
    out.push({ phrase, boxes: br && !isPoints ? parseBoxes(br) : [], points: br && isPoints ? parsePoints(br) : [] });
  }
  return out;
}
