// Training metrics: one JSON object a line in ROOT/metrics.jsonl (appended per step, cut back to
// the checkpoint's step on resume so a resumed run lists every step once), and
// progress: a redrawn bar (stage, step, loss, tokens/s, ETA) on a terminal, JSON lines otherwise.

import * as fs from 'node:fs';
import { writeFileAtomic } from '../io/safetensors.ts';
import { lossCurveSvg, type CurvePoint } from './svg.ts';

export interface StepMetrics {
  /** Global optimizer step, 1-based. */
  step: number;
  stage: string;
  /** Step within the stage, 1-based. */
  stage_step: number;
  loss: number;
  ce: number;
  aux: number;
  lr: number;
  grad_norm: number;
  tokens: number;
  tokens_per_s: number;
  ms: number;
}

export class MetricsLog {
  readonly file: string;
  private readonly points: CurvePoint[] = [];

  /** Opens `file`, keeping only lines with step <= keepUpTo (0 on a fresh run: truncate). */
  constructor(file: string, keepUpTo = 0) {
    this.file = file;
    const kept: string[] = [];
    if (keepUpTo > 0 && fs.existsSync(file)) {
      for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (line.trim() === '') continue;
        let m: StepMetrics;
        try { m = JSON.parse(line) as StepMetrics; } catch { break; } // a torn last line from a kill
        if (!(m.step <= keepUpTo)) break;
        kept.push(line);
        this.points.push({ step: m.step, loss: m.loss, stage: m.stage });
      }
    }
    const text = kept.length > 0 ? `${kept.join('\n')}\n` : '';
    writeFileAtomic(file, (fd) => { if (text) fs.writeSync(fd, text); });
  }

  append(m: StepMetrics): void {
    fs.appendFileSync(this.file, `${JSON.stringify(m)}\n`);
    this.points.push({ step: m.step, loss: m.loss, stage: m.stage });
  }

  get curve(): readonly CurvePoint[] { return this.points; }

  /** Writes the loss-curve SVG atomically. */
  writeSvg(file: string, title?: string): void {
    const svg = lossCurveSvg(this.points, title);
    writeFileAtomic(file, (fd) => { fs.writeSync(fd, svg); });
  }
}

export interface ProgressInfo {
  stage: string;
  stageIndex: number;
  stages: number;
  step: number;
  total: number;
  loss: number;
  lr: number;
  tokensPerS: number;
  gradNorm: number;
}

/** A progress bar on a TTY; JSON lines (every `every` steps, and the first and last) otherwise. */
export class TrainProgress {
  private readonly tty: boolean;
  private readonly t0 = performance.now();
  private startStep = -1;
  private lastLen = 0;

  private readonly out: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly every: number;

  constructor(out: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr, every = 10, forceJson = false) {
    this.out = out;
    this.every = every;
    this.tty = !forceJson && out.isTTY === true && !process.env['CI'];
  }

  update(p: ProgressInfo): void {
    if (this.startStep < 0) this.startStep = p.step - 1;
    const done = p.step - this.startStep;
    const elapsed = (performance.now() - this.t0) / 1000;
    const eta = done > 0 ? (elapsed / done) * (p.total - p.step) : 0;
    if (this.tty) {
      const w = 24, filled = Math.round((w * p.step) / p.total);
      const line = `[${'#'.repeat(filled)}${'-'.repeat(w - filled)}] ${p.stage} (${p.stageIndex + 1}/${p.stages})  step ${p.step}/${p.total}  loss ${p.loss.toFixed(4)}  ${Math.round(p.tokensPerS)} tok/s  ETA ${fmtTime(eta)}`;
      this.out.write(`\r${line}${' '.repeat(Math.max(0, this.lastLen - line.length))}`);
      this.lastLen = line.length;
      if (p.step === p.total) this.out.write('\n');
    } else if (p.step % this.every === 0 || p.step === p.total || done === 1) {
      this.out.write(`${JSON.stringify({ event: 'step', stage: p.stage, step: p.step, total: p.total, loss: round(p.loss), lr: p.lr, tokens_per_s: Math.round(p.tokensPerS), grad_norm: round(p.gradNorm), eta_s: Math.round(eta) })}\n`);
    }
  }

  /** A one-off message (stage start, checkpoint); a line of its own on a TTY, a JSON event otherwise. */
  note(event: string, fields: Record<string, unknown>): void {
    if (this.tty) {
      if (this.lastLen > 0) this.out.write('\n');
      this.lastLen = 0;
      this.out.write(`${event}: ${Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ')}\n`);
    } else this.out.write(`${JSON.stringify({ event, ...fields })}\n`);
  }
}

function round(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 1e5) / 1e5 : x;
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = Math.round(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}
