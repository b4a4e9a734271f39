// Evaluation data and scoring dispatch. Examples come from conversation records (data layer):
// question = the first human turn without `<image>` placeholders; references = the record's
// `answers` list when present, else the first gpt turn. Task-specific fields: rec takes the box
// from `box` (pixels, with `width`/`height`) or parses it from the answer (already normalised);
// pope/mme take the yes/no label from the reference; mme groups by `question_id` pairs of one
// image (the image path, or `image_id`) and `category`. The model is abstracted as
// `answer(example) => Promise<string>` so the harness needs no serving code.

import { parseFirstBox } from '../data/tasks.ts';
import type { Box, NormBox } from '../data/types.ts';
import { IMAGE_PLACEHOLDER } from '../data/types.ts';
import type { ConversationRecord } from '../data/conversations.ts';
import { bleu, ciderD } from './caption.ts';
import { recScore } from './grounding.ts';
import { vqaScore } from './vqa.ts';
import { mmeScore, popeScore } from './yesno.ts';

export type EvalTask = 'vqa' | 'rec' | 'pope' | 'mme' | 'caption';
export const EVAL_TASKS: readonly EvalTask[] = ['vqa', 'rec', 'pope', 'mme', 'caption'];

export interface EvalExample {
  id: string;
  question: string;
  /** Resolved image paths. */
  images: string[];
  references: string[];
  /** Groups questions of one image (MME acc+). */
  imageKey: string;
  category?: string;
  /** REC ground truth: pixel box with size, or normalised box (width/height absent). */
  box?: Box | NormBox;
  width?: number;
  height?: number;
}

function strList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0) throw new Error(`${what} must be a non-empty array`);
  return v.map((x) => {
    if (typeof x === 'string') return x;
    if (x !== null && typeof x === 'object' && typeof (x as Record<string, unknown>)['answer'] === 'string') return (x as Record<string, string>)['answer']!;
    throw new Error(`${what} must hold strings or {"answer": string}`);
  });
}

function num4(v: unknown): [number, number, number, number] | null {
  return Array.isArray(v) && v.length === 4 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) ? (v as [number, number, number, number]) : null;
}

/** Turns a conversation record into an evaluation example for `task`. Throws naming file and line. */
export function exampleFromRecord(rec: ConversationRecord, task: EvalTask): EvalExample {
  const where = `${rec.source.file}:${rec.source.line}`;
  try {
    const human = rec.conversations.find((t) => t.from === 'human');
    if (!human) throw new Error('no human turn');
    const question = human.value.split(IMAGE_PLACEHOLDER).join('').trim();
    const raw = rec.raw;
    const refs = raw['answers'] !== undefined ? strList(raw['answers'], '"answers"') : (() => {
      const g = rec.conversations.find((t) => t.from === 'gpt');
      if (!g) throw new Error('no gpt turn and no "answers" list');
      return [g.value];
    })();
    const ex: EvalExample = {
      id: rec.id, question, images: rec.images, references: refs,
      imageKey: typeof raw['image_id'] === 'string' || typeof raw['image_id'] === 'number' ? String(raw['image_id']) : (rec.images[0] ?? rec.id),
    };
    if (typeof raw['category'] === 'string') ex.category = raw['category'];
    if (task === 'rec') {
      const b = num4(raw['box']) ?? num4(raw['bbox']);
      if (b) {
        const W = raw['width'], H = raw['height'];
        if (typeof W !== 'number' || typeof H !== 'number') throw new Error('"box" needs "width" and "height" (pixels) of the image');
        ex.box = b; ex.width = W; ex.height = H;
      } else {
        const p = parseFirstBox(refs[0]!);
        if (!p) throw new Error('no "box" field and the reference answer holds no box');
        ex.box = p;
      }
    }
    return ex;
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
}

export type Metrics = Record<string, unknown>;

/** Scores predictions (one per example, same order) with the task's community rule. */
export function scoreTask(task: EvalTask, examples: readonly EvalExample[], predictions: readonly string[]): Metrics {
  if (examples.length !== predictions.length) throw new Error(`scoreTask: ${examples.length} examples but ${predictions.length} predictions`);
  if (examples.length === 0) throw new Error('scoreTask: nothing to score');
  const z = examples.map((e, i) => ({ e, p: predictions[i]! }));
  switch (task) {
    case 'vqa': return { ...vqaScore(z.map(({ e, p }) => ({ prediction: p, references: e.references }))) };
    case 'pope': return { ...popeScore(z.map(({ e, p }) => ({ prediction: p, label: e.references[0]! }))) };
    case 'mme': return { ...mmeScore(z.map(({ e, p }) => ({ prediction: p, label: e.references[0]!, image: e.imageKey, ...(e.category !== undefined ? { category: e.category } : {}) }))) };
    case 'rec': return { ...recScore(z.map(({ e, p }) => ({ prediction: p, box: e.box!, ...(e.width !== undefined ? { width: e.width, height: e.height! } : {}) }))) };
    case 'caption': {
      const items = z.map(({ e, p }) => ({ prediction: p, references: e.references }));
      const b = bleu(items);
      return { bleu4: b.bleu[3], bleu1: b.bleu[0], cider: ciderD(items).cider, brevity_penalty: b.brevity_penalty, count: items.length };
    }
  }
}

export interface EvalRun {
  task: EvalTask;
  metrics: Metrics;
  predictions: { id: string; question: string; answer: string; references: string[] }[];
}

/** Answers every example in order with `answer`, then scores. */
export async function evaluate(task: EvalTask, examples: readonly EvalExample[], answer: (ex: EvalExample) => Promise<string>, onAnswer?: (ex: EvalExample, answer: string, i: number) => void): Promise<EvalRun> {
  const preds: string[] = [];
  for (let i = 0; i < examples.length; i++) {
    const a = await answer(examples[i]!);
    preds.push(a);
    onAnswer?.(examples[i]!, a, i);
  }
  return {
    task, metrics: scoreTask(task, examples, preds),
    predictions: examples.map((e, i) => ({ id: e.id, question: e.question, answer: preds[i]!, references: e.references })),
  };
}

/**
 * A predictions-file row → (example, prediction): {question_id | id, answer | prediction,
 * references | answers | label | gt, box?, width?, height?, image | image_id?, category?}.
 */
export function predictionRow(obj: unknown, task: EvalTask, where: string): { example: EvalExample; prediction: string } {
  const fail = (m: string): never => { throw new Error(`${where}: ${m}`); };
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) fail('expected a JSON object');
  const r = obj as Record<string, unknown>;
  const idv = r['question_id'] ?? r['id'];
  const id = typeof idv === 'string' || typeof idv === 'number' ? String(idv) : where;
  const pred = r['answer'] ?? r['prediction'] ?? r['text'];
  if (typeof pred !== 'string') fail('needs "answer" (the model output) as a string');
  let refs: string[] = [];
  const rv = r['references'] ?? r['answers'] ?? r['label'] ?? r['gt'] ?? r['gt_answer'];
  if (typeof rv === 'string') refs = [rv];
  else if (rv !== undefined) { try { refs = strList(rv, '"references"'); } catch (e) { fail((e as Error).message); } }
  const ex: EvalExample = { id, question: typeof r['question'] === 'string' ? r['question'] : '', images: [], references: refs, imageKey: String(r['image_id'] ?? r['image'] ?? id) };
  if (typeof r['category'] === 'string') ex.category = r['category'];
  if (task === 'rec') {
    const b = num4(r['box']) ?? num4(r['bbox']);
    if (b) {
      ex.box = b;
      if (typeof r['width'] === 'number' && typeof r['height'] === 'number') { ex.width = r['width']; ex.height = r['height']; }
    } else {
      const p = refs[0] !== undefined ? parseFirstBox(refs[0]) : null;
      if (!p) fail('rec needs "box" ([x1,y1,x2,y2] pixels with width/height, or normalised) or a reference holding a box');
      ex.box = p!;
    }
  } else if (refs.length === 0) fail('needs "references" (or "answers", "label")');
  return { example: ex, prediction: pred as string };
}
