// Token planner: SPEC worked examples, grid-chooser properties, the `chimera plan` CLI contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  factorPairs, fitScore, fuyuGrid, LLAVA_NEXT_PINPOINTS, resizeAndPad, selectBestResolution, slimeGrid, sphinxViews,
  uhdAdaptSize, uhdGrid, unpadRange,
} from '../src/vision/views.ts';
import { getPreset, PRESETS } from '../src/models/presets.ts';
import { plan } from '../src/models/plan.ts';

const total = (name: string, W: number, H: number, detail: 'low' | 'high' = 'high'): number => plan(getPreset(name), W, H, detail).totalPositions;

test('SPHINX variants (SPEC §1.2, §1.6)', () => {
  assert.equal(total('sphinx', 224, 224), 291);
  assert.equal(total('sphinx-1k', 448, 448), 1455);
  assert.equal(total('sphinx-2k', 672, 672), 2910);
  assert.equal(total('sphinx-tiny', 512, 512), 259);
  assert.equal(total('sphinx-moe', 512, 512), 291);
  assert.equal(total('sphinx-1k', 448, 448, 'low'), 291);
  const v = plan(getPreset('sphinx-1k'), 448, 448).views;
  assert.deepEqual(v.map((x) => x.name), ['global', 'tl', 'tr', 'bl', 'br']);
  assert.deepEqual(v.map((x) => x.size), Array(5).fill([224, 224]));
  // 2k crops are raster order, y outer
  const c = sphinxViews(672, 672, 3, 224).slice(1).map((x) => x.cell);
  assert.deepEqual(c, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2]]);
  // non-square: crops tile the padded square canvas
  const w = sphinxViews(800, 400, 2, 224);
  assert.deepEqual(w[0]!.region, { x: 0, y: -200, w: 800, h: 800 });
  assert.deepEqual(w[4]!.region, { x: 400, y: 200, w: 400, h: 400 });
});

test('LLaVA-1.5: 576 at 336x336 (SPEC §3.6)', () => {
  assert.equal(total('llava-1.5', 336, 336), 576);
  assert.equal(total('llava-1.5', 1000, 200), 576);
});

test('LLaVA-NeXT AnyRes worked example (SPEC §4.3, §4.4)', () => {
  assert.deepEqual(selectBestResolution(800, 600, LLAVA_NEXT_PINPOINTS), [672, 672]);
  assert.deepEqual(LLAVA_NEXT_PINPOINTS.map(([w, h]) => fitScore(800, 600, w, h).effective), [84672, 150528, 338688, 150528, 84672]);
  assert.deepEqual(resizeAndPad(800, 600, 672, 672), { w: 672, h: 504, x: 0, y: 84 });
  assert.deepEqual(unpadRange(800, 600, 48, 48), { rows: [6, 42], cols: [0, 48] });
  assert.equal(total('llava-next', 800, 600), 2340);
  assert.equal(total('llava-next', 672, 672), 48 * 49 + 576);
  assert.equal(total('llava-next', 800, 600, 'low'), 577);
  // tall image: columns are unpadded, newline per kept row
  const p = plan(getPreset('llava-next'), 300, 900);
  assert.deepEqual(p.grid, [1, 3]);
  const keep = unpadRange(300, 900, 72, 24);
  assert.equal(p.totalPositions, 576 + 72 * (keep.cols[1] - keep.cols[0] + 1));
});

test('SliME tiling (SPEC §2.6, §2.7)', () => {
  assert.deepEqual(slimeGrid(1008, 672), [3, 2]);
  assert.deepEqual(slimeGrid(336, 336).reduce((a, b) => a * b), 2);
  const p = plan(getPreset('slime'), 1008, 672);
  assert.equal(p.views.length, 7);
  assert.equal(p.totalPositions, 576 + 1 + 864); // upper bound, K ≤ 864
  assert.equal(total('slime', 1008, 672, 'low'), 576);
});

test('LLaVA-UHD worked example (SPEC §5.6, §5.7)', () => {
  assert.deepEqual(uhdGrid(672, 1088), [2, 3]);
  assert.deepEqual(uhdGrid(336, 336), [1, 1]);
  assert.deepEqual(uhdAdaptSize(336, 362), { hp: 24, wp: 23 });
  const p = plan(getPreset('llava-uhd'), 672, 1088);
  assert.equal(p.totalPositions, 454);
  // boxes j·H//n: heights 362, 363, 363 (SPEC rounds to 336×362); every slice adapts to 24×23 patches
  assert.deepEqual(p.views.slice(0, 6).map((v) => v.region.w + 'x' + v.region.h), ['336x362', '336x362', '336x363', '336x363', '336x363', '336x363']);
  assert.deepEqual(p.views.slice(0, 6).map((v) => v.size), Array(6).fill([23 * 14, 24 * 14]));
  assert.equal(p.views[6]!.name, 'overview');
});

test('Monkey, Qwen-VL, BLIP-2, Fuyu and the rest (SPEC §6, §8, §9, §13)', () => {
  assert.equal(total('monkey', 896, 896), 1280);
  assert.equal(total('monkey', 1000, 300), 1280);
  assert.equal(total('monkey', 896, 896, 'low'), 256);
  assert.equal(total('qwen-vl', 448, 448), 256);
  assert.equal(total('blip-2', 640, 480), 32);
  assert.equal(total('instructblip', 640, 480), 32);
  assert.equal(total('fuyu', 600, 300), 210); // h×w 300×600 → 10 rows × 20 + 10 newlines
  assert.deepEqual(fuyuGrid(3840, 2160), { w: 1920, h: 1080, rows: 36, cols: 64 });
  assert.equal(total('cogvlm', 490, 490), 1227);
  assert.equal(total('moe-llava', 336, 336), 576);
  assert.equal(total('lavin', 224, 224), 6);
  assert.equal(total('next-gpt', 224, 224), 1);
  assert.equal(total('flamingo', 224, 224), 0);
});

test('every CLI preset exists and plans with finite positive FLOPs', () => {
  const names = ['sphinx', 'sphinx-1k', 'sphinx-2k', 'sphinx-tiny', 'sphinx-moe', 'llava', 'llava-1.5', 'llava-next', 'llava-uhd', 'monkey',
    'slime', 'flamingo', 'blip-2', 'instructblip', 'qwen-vl', 'cogvlm', 'moe-llava', 'llama-vid', 'fuyu', 'internlm-xcomposer', 'lavin', 'next-gpt', 'yi-vl'];
  assert.deepEqual([...PRESETS.keys()].sort(), [...names].sort());
  for (const n of names) for (const [W, H] of [[1, 1], [640, 480], [4000, 300]] as const) {
    const p = plan(getPreset(n), W, H);
    assert.ok(p.views.length >= 1, n);
    assert.equal(p.totalPositions, p.views.reduce((a, v) => a + v.positions, 0));
    assert.ok(Number.isFinite(p.encoderFlops) && p.encoderFlops > 0, `${n} encoder flops`);
    assert.ok(Number.isFinite(p.llmFlops) && p.llmFlops > 0, `${n} llm flops`);
  }
  // LLaVA-1.5 encoder is ~CLIP-L/336 (≈0.3B params × 577 tokens × 2) plus attention: 0.35–0.5 TFLOP
  const e = plan(getPreset('llava-1.5'), 336, 336).encoderFlops;
  assert.ok(e > 3.5e11 && e < 5e11, String(e));
});

// A small deterministic PRNG for the property tests.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32; };
}

test('property: selectBestResolution maximises effective area, then minimises waste', () => {
  const r = rng(7);
  for (let it = 0; it < 500; it++) {
    const W = 1 + Math.floor(r() * 3000), H = 1 + Math.floor(r() * 3000);
    const cands = Array.from({ length: 1 + Math.floor(r() * 6) }, () => [336 * (1 + Math.floor(r() * 4)), 336 * (1 + Math.floor(r() * 4))] as const);
    const best = selectBestResolution(W, H, cands);
    const bs = fitScore(W, H, best[0], best[1]);
    for (const [cw, ch] of cands) {
      const s = fitScore(W, H, cw, ch);
      assert.ok(s.effective < bs.effective || (s.effective === bs.effective && s.waste >= bs.waste), `${W}x${H}`);
    }
    // first wins on full ties
    const first = cands.findIndex(([cw, ch]) => { const s = fitScore(W, H, cw, ch); return s.effective === bs.effective && s.waste === bs.waste; });
    assert.deepEqual(best, [cands[first]![0], cands[first]![1]]);
  }
});

test('property: UHD grid minimises log-aspect distance over its candidate counts; SliME tiles in [2, 7]', () => {
  const r = rng(11);
  for (let it = 0; it < 500; it++) {
    const W = 1 + Math.floor(r() * 2500), H = 1 + Math.floor(r() * 2500);
    const N = Math.min(6, Math.ceil(W * H / 336 ** 2));
    const counts = N <= 2 ? [N, N + 1] : [N - 1, N, N + 1];
    const [m, n] = uhdGrid(W, H);
    assert.ok(counts.includes(m * n));
    const d = Math.abs(Math.log(m / n) - Math.log(W / H));
    for (const k of counts) for (const [a, b] of factorPairs(k)) assert.ok(Math.abs(Math.log(a / b) - Math.log(W / H)) >= d - 1e-12);
    const [c, rr] = slimeGrid(W, H);
    assert.ok(c * rr >= 2 && c * rr <= 7, `${W}x${H} -> ${c}x${rr}`);
    const a = uhdAdaptSize(W, H);
    assert.ok(a.hp * a.wp <= 576 && a.hp >= 1 && a.wp >= 1);
  }
});

const cli = (args: string[]) => spawnSync(process.execPath, [new URL('../src/cli/main.js', import.meta.url).pathname, 'plan', ...args], { encoding: 'utf8' });

test('CLI: --json shape', () => {
  const r = cli(['--preset', 'llava-next', '--image', '800x600', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(o), ['preset', 'image', 'views', 'total_positions', 'encoder_flops', 'llm_flops']);
  assert.equal(o.preset, 'llava-next');
  assert.deepEqual(o.image, [800, 600]);
  assert.equal(o.total_positions, 2340);
  for (const v of o.views) assert.deepEqual(Object.keys(v), ['name', 'size', 'positions']);
  assert.equal(o.views.length, 5);
  const low = JSON.parse(cli(['--preset', 'sphinx-2k', '--image', '672x672', '--detail', 'low', '--json']).stdout);
  assert.equal(low.total_positions, 291);
  assert.equal(low.views.length, 1);
});

test('CLI: table, --svg and --help', () => {
  const dir = mkdtempSync(join(tmpdir(), 'plan-'));
  const f = join(dir, 'p.svg');
  const r = cli(['--preset', 'sphinx-1k', '--image', '640x480', '--svg', f]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /total positions 1455/);
  const svg = readFileSync(f, 'utf8');
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/<rect /g) ?? []).length, 1 + 5);
  const h = cli(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--preset NAME --image WxH/);
});

test('CLI: errors are one line, exit 2', () => {
  for (const args of [['--preset', 'nope', '--image', '10x10'], ['--preset', 'llava', '--image', '10by10'], ['--preset', 'llava', '--image', '0x10'],
    ['--preset', 'llava'], ['--image', '10x10'], ['--preset', 'llava', '--image', '10x10', '--detail', 'mid'], ['--preset', 'llava', '--image', '10x10', '--bogus']]) {
    const r = cli(args);
    assert.equal(r.status, 2, args.join(' '));
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});
