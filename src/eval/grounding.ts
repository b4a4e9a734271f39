// Referring-expression comprehension (RefCOCO/+/g): ACC@0.5 — a prediction is right when the
// first box parsed from the reply has IoU >= 0.5 with the ground truth, both in SPHINX's
// padded-square normalised coordinates (data/tasks.ts; IoU is the same as in pixels).

import { encodeBox, iou, parseFirstBox } from '../data/tasks.ts';
import type { Box, NormBox } from '../data/types.ts';

export interface RecItem {
  prediction: string;
  /** Ground truth: a pixel box with the image size, or an already normalised box. */
  box: Box | NormBox;
  width?: number;
  height?: number;
}

export function recScore(items: readonly RecItem[], threshold = 0.5): { accuracy: number; mean_iou: number; unparsed: number; count: number } {
  if (items.length === 0) throw new Error('recScore: no items');
  let right = 0, sumIou = 0, unparsed = 0;
  for (const it of items) {
    const gt: NormBox = it.width !== undefined && it.height !== undefined ? encodeBox(it.box, it.width, it.height) : [...it.box] as NormBox;
    const p = parseFirstBox(it.prediction);
    if (p === null) { unparsed++; continue; }
    const v = iou(p, gt);
    sumIou += v;
    if (v >= threshold) right++;
  }
  return { accuracy: right / items.length, mean_iou: sumIou / items.length, unparsed, count: items.length };
}
