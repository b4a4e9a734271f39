// A loss-curve chart as hand-written SVG: one polyline per stage over the global step, dashed
// lines at stage boundaries, axes with round-number ticks. No dependencies.

export interface CurvePoint {
  step: number;
  loss: number;
  stage: string;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick positions covering [lo, hi] (about `n` of them). */
export function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

/** The chart; non-finite losses are left out. */
export function lossCurveSvg(points: readonly CurvePoint[], title = 'training loss', width = 720, height = 400): string {
  const pts = points.filter((p) => Number.isFinite(p.loss) && Number.isFinite(p.step));
  const m = { l: 64, r: 150, t: 36, b: 44 };
  const W = width - m.l - m.r, H = height - m.t - m.b;
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="white"/>\n<text x="${m.l}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>\n`;
  if (pts.length === 0) return `${head}<text x="${m.l}" y="${m.t + H / 2}">no data yet</text>\n</svg>\n`;
  let x0 = Math.min(...pts.map((p) => p.step)), x1 = Math.max(...pts.map((p) => p.step));
  let y0 = Math.min(...pts.map((p) => p.loss)), y1 = Math.max(...pts.map((p) => p.loss));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 = y0 >= 0 ? Math.max(0, y0 - pad) : y0 - pad;
  y1 += pad;
  const X = (v: number): number => m.l + ((v - x0) / (x1 - x0)) * W;
  const Y = (v: number): number => m.t + H - ((v - y0) / (y1 - y0)) * H;
  const parts: string[] = [head];
  parts.push(`<g stroke="#ddd">`);
  for (const t of ticks(y0, y1)) parts.push(`<line x1="${m.l}" y1="${Y(t).toFixed(1)}" x2="${m.l + W}" y2="${Y(t).toFixed(1)}"/>`);
  parts.push('</g>');
  parts.push(`<g stroke="black"><line x1="${m.l}" y1="${m.t + H}" x2="${m.l + W}" y2="${m.t + H}"/><line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + H}"/></g>`);
  parts.push('<g text-anchor="end">');
  for (const t of ticks(y0, y1)) parts.push(`<text x="${m.l - 6}" y="${(Y(t) + 4).toFixed(1)}">${fmt(t)}</text>`);
  parts.push('</g><g text-anchor="middle">');
  for (const t of ticks(x0, x1).filter((v) => Number.isInteger(v))) parts.push(`<text x="${X(t).toFixed(1)}" y="${m.t + H + 16}">${fmt(t)}</text>`);
  parts.push(`<text x="${m.l + W / 2}" y="${height - 8}">step</text></g>`);
  parts.push(`<text transform="translate(16 ${m.t + H / 2}) rotate(-90)" text-anchor="middle">loss</text>`);
  // Stages in order of first appearance; a boundary where the stage changes.
  const stages: string[] = [];
  for (const p of pts) if (!stages.includes(p.stage)) stages.push(p.stage);
  for (let i = 1; i < pts.length; i++) {
    if (pts[i]!.stage !== pts[i - 1]!.stage) {
      const x = X((pts[i]!.step + pts[i - 1]!.step) / 2).toFixed(1);
      parts.push(`<line x1="${x}" y1="${m.t}" x2="${x}" y2="${m.t + H}" stroke="#888" stroke-dasharray="4 3"/>`);
    }
  }
  stages.forEach((s, k) => {
    const c = COLORS[k % COLORS.length]!;
    const line = pts.filter((p) => p.stage === s).map((p) => `${X(p.step).toFixed(1)},${Y(p.loss).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="1.5" points="${line}"/>`);
    const ly = m.t + 8 + k * 18;
    parts.push(`<line x1="${m.l + W + 12}" y1="${ly}" x2="${m.l + W + 32}" y2="${ly}" stroke="${c}" stroke-width="2"/><text x="${m.l + W + 38}" y="${ly + 4}">${esc(s)}</text>`);
  });
  parts.push('</svg>\n');
  return parts.join('\n');
}
