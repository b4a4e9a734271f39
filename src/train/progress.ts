// Training progress: a redrawn line on a terminal, JSON lines otherwise (CI, pipes).

export interface ProgressEvent {
  step: number;
  total: number;
  loss: number;
  tokensPerS: number;
  lr: number;
}

export class Progress {
  private readonly start = performance.now();
  private readonly tty: boolean;
  private readonly every: number;

  private readonly out: NodeJS.WriteStream;

  constructor(out: NodeJS.WriteStream = process.stderr, opts: { every?: number; forceJson?: boolean } = {}) {
    this.out = out;
    this.tty = !opts.forceJson && out.isTTY === true && !process.env['CI'];
    this.every = opts.every ?? 25;
  }

  update(e: ProgressEvent): void {
    const elapsed = (performance.now() - this.start) / 1000;
    const eta = e.step > 0 ? (elapsed / e.step) * (e.total - e.step) : 0;
    if (this.tty) {
      const w = 24, filled = Math.round((w * e.step) / e.total);
      const bar = '#'.repeat(filled) + '-'.repeat(w - filled);
      this.out.write(`\r[${bar}] step ${e.step}/${e.total}  loss ${e.loss.toFixed(4)}  ${Math.round(e.tokensPerS)} tok/s  ETA ${fmtTime(eta)}   `);
      if (e.step === e.total) this.out.write('\n');
    } else if (e.step % this.every === 0 || e.step === e.total || e.step === 1) {
      this.out.write(JSON.stringify({ step: e.step, total: e.total, loss: round(e.loss), tokens_per_s: Math.round(e.tokensPerS), lr: e.lr, eta_s: Math.round(eta) }) + '\n');
    }
  }
}

function round(x: number): number {
  return Math.round(x * 1e5) / 1e5;
}

function fmtTime(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}
