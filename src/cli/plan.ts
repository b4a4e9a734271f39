// `chimera plan --preset NAME --image WxH [--detail low|high] [--json] [--svg FILE]`:
// image positions and FLOPs per view (the planner is src/models/plan.ts).

import { writeFileSync } from 'node:fs';
import { CliError, parseArgs, strFlag } from './args.ts';
import { PRESETS } from '../models/presets.ts';
import { plan, type Plan } from '../models/plan.ts';

export function parseImageSize(s: string): [number, number] {
  const m = /^(\d+)[xX](\d+)$/.exec(s);
  const W = m ? Number(m[1]) : NaN, H = m ? Number(m[2]) : NaN;
  if (!m || W < 1 || H < 1 || W > 100000 || H > 100000) throw new CliError(`--image must be WxH with positive integers up to 100000, got '${s}'`);
  return [W, H];
}

function fmt(n: number): string {
  if (n >= 1e12) return `${(n / 1e12).toFixed(2)} T`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  return String(n);
}

export function planJson(p: Plan): string {
  return JSON.stringify({
    preset: p.preset, image: p.image,
    views: p.views.map((v) => ({ name: v.name, size: v.size, positions: v.positions })),
    total_positions: p.totalPositions, encoder_flops: p.encoderFlops, llm_flops: p.llmFlops,
  });
}

function table(p: Plan): string {
  const rows = p.views.map((v) => `  ${v.name.padEnd(14)} ${`${v.size[0]}x${v.size[1]}`.padEnd(10)} ${String(v.positions).padStart(9)}   ${fmt(v.encoderFlops)}FLOP`);
  return [
    `preset ${p.preset}, image ${p.image[0]}x${p.image[1]}, detail ${p.detail}${p.grid ? `, grid ${p.grid[0]} cols x ${p.grid[1]} rows` : ''}`,
    `  ${'view'.padEnd(14)} ${'size'.padEnd(10)} ${'positions'.padStart(9)}   encoder`,
    ...rows,
    `total positions ${p.totalPositions}`,
    `encoder ${fmt(p.encoderFlops)}FLOP, LLM prefill (image positions) ${fmt(p.llmFlops)}FLOP`,
    ...(p.note ? [`note: ${p.note}`] : []),
  ].join('\n');
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** The image outline (black) with each view's region drawn on it. */
export function planSvg(p: Plan): string {
  const [W, H] = p.image;
  let x0 = 0, y0 = 0, x1 = W, y1 = H;
  for (const v of p.views) {
    x0 = Math.min(x0, v.region.x); y0 = Math.min(y0, v.region.y);
    x1 = Math.max(x1, v.region.x + v.region.w); y1 = Math.max(y1, v.region.y + v.region.h);
  }
  const m = 0.04 * Math.max(x1 - x0, y1 - y0), fs = Math.max(8, 0.025 * Math.max(W, H));
  const colors = ['#d62728', '#1f77b4', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#f4f4f4" stroke="#000" stroke-width="${fs / 4}"/>`);
  p.views.forEach((v, i) => {
    const c = colors[i % colors.length]!, r = v.region, inset = v.cell ? 0 : fs / 3;
    parts.push(`<rect x="${r.x + inset}" y="${r.y + inset}" width="${Math.max(0, r.w - 2 * inset)}" height="${Math.max(0, r.h - 2 * inset)}" fill="none" stroke="${c}" stroke-width="${fs / 6}" stroke-dasharray="${v.cell ? 'none' : `${fs / 2} ${fs / 4}`}"/>`);
    parts.push(`<text x="${r.x + fs / 2}" y="${r.y + fs * (v.cell ? 1.2 : 2.4)}" font-size="${fs}" fill="${c}" font-family="sans-serif">${esc(`${v.name} ${v.size[0]}x${v.size[1]}: ${v.positions}`)}</text>`);
  });
  if (p.preset === 'fuyu' && p.grid) {
    const [cols, rows] = p.grid, s = p.views[0]!.region.w / cols;
    for (let c = 1; c < cols; c++) parts.push(`<line x1="${c * s}" y1="0" x2="${c * s}" y2="${rows * s}" stroke="#888" stroke-width="${fs / 12}"/>`);
    for (let r = 1; r < rows; r++) parts.push(`<line x1="0" y1="${r * s}" x2="${cols * s}" y2="${r * s}" stroke="#888" stroke-width="${fs / 12}"/>`);
  }
  const vb = [x0 - m, y0 - m, x1 - x0 + 2 * m, y1 - y0 + 2 * m + 2 * fs];
  parts.push(`<text x="${x0}" y="${y1 + m + fs}" font-size="${fs}" font-family="sans-serif">${esc(`${p.preset} ${W}x${H}: ${p.views.length} views, ${p.totalPositions} positions`)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="${vb.join(' ')}" width="800" height="${Math.round(800 * vb[3]! / vb[2]!)}">\n${parts.join('\n')}\n</svg>\n`;
}

export async function planCommand(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ['preset', 'image', 'detail', 'svg'], ['json']);
  if (a.positionals.length > 0) throw new CliError(`unexpected argument '${a.positionals[0]}'`);
  const name = strFlag(a, 'preset', '');
  if (name === '') throw new CliError('--preset NAME is required');
  const preset = PRESETS.get(name);
  if (!preset) throw new CliError(`unknown preset '${name}' (known: ${[...PRESETS.keys()].join(', ')})`);
  const img = strFlag(a, 'image', '');
  if (img === '') throw new CliError('--image WxH is required');
  const [W, H] = parseImageSize(img);
  const detail = strFlag(a, 'detail', 'high', ['low', 'high']) as 'low' | 'high';
  const p = plan(preset, W, H, detail);
  const svg = a.flags.get('svg');
  if (svg === true) throw new CliError('--svg needs a file name');
  if (svg !== undefined) writeFileSync(svg, planSvg(p));
  process.stdout.write((a.flags.has('json') ? planJson(p) : table(p)) + '\n');
}
