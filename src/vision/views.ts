// Pure geometry of the high-resolution schemes (SPEC §1.6, §2.3, §4.2, §5.2, §6.2, §13.1):
// which views an image is cut into, the pixel size each view is encoded at, and where each view
// sits on the original image. No tensors here; callers turn views into token counts.
// Coordinates: `region` is in original-image pixels (x right, y down); regions may extend past
// the image where a scheme pads (SPHINX's square canvas, AnyRes/SliME letterboxing).

export interface Rect { x: number; y: number; w: number; h: number }

export interface ViewGeom {
  name: string;
  /** Pixel size fed to the encoder, [w, h]. */
  size: [number, number];
  /** Area of the original image this view covers (see header). */
  region: Rect;
  /** Grid position (row, col) for tiles/slices/crops; absent for global views. */
  cell?: [number, number];
}

function check(W: number, H: number, what: string): void {
  if (!Number.isInteger(W) || !Number.isInteger(H) || W < 1 || H < 1) throw new Error(`${what}: image size must be positive integers, got ${W}x${H}`);
}

/** Factor pairs (cols, rows) of n, cols ascending. */
export function factorPairs(n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let c = 1; c <= n; c++) if (n % c === 0) out.push([c, n / c]);
  return out;
}

/** Plain resize of the whole image (BLIP-2, Qwen-VL, Flamingo, ...): one view, aspect not kept. */
export function singleResize(W: number, H: number, size: number, name = 'global'): ViewGeom[] {
  check(W, H, 'singleResize');
  return [{ name, size: [size, size], region: { x: 0, y: 0, w: W, h: H } }];
}

/** Square canvas of side max(W,H) with the image centred, offsets (max-min)//2 (SPEC §1.3, §3.2 'pad'). */
export function padSquare(W: number, H: number): Rect {
  const L = Math.max(W, H);
  return { x: 0 - Math.floor((L - W) / 2), y: 0 - Math.floor((L - H) / 2), w: L, h: L };
}

/** Pad to a square, then resize to `size` (LLaVA-1.5, SPHINX single view). */
export function singlePadded(W: number, H: number, size: number, name = 'global'): ViewGeom[] {
  check(W, H, 'singlePadded');
  return [{ name, size: [size, size], region: padSquare(W, H) }];
}

/**
 * SPHINX mixed scales (SPEC §1.6): pad to square, resize to g·view; a global view resized to `view`,
 * then g×g native crops of `view` in raster order (rows outer). g=1 is plain SPHINX (one view).
 * 1k: g=2 (448 → global + TL,TR,BL,BR); 2k: g=3 (672 → global + 9 crops).
 */
export function sphinxViews(W: number, H: number, g: number, view: number): ViewGeom[] {
  check(W, H, 'sphinxViews');
  if (!Number.isInteger(g) || g < 1) throw new Error(`sphinxViews: grid must be a positive integer, got ${g}`);
  const sq = padSquare(W, H);
  const out: ViewGeom[] = [{ name: 'global', size: [view, view], region: sq }];
  if (g === 1) return out;
  const step = sq.w / g;
  const names2 = ['tl', 'tr', 'bl', 'br'];
  for (let r = 0; r < g; r++) for (let c = 0; c < g; c++) {
    out.push({ name: g === 2 ? names2[r * 2 + c]! : `crop-r${r}-c${c}`, size: [view, view], cell: [r, c],
      region: { x: sq.x + c * step, y: sq.y + r * step, w: step, h: step } });
  }
  return out;
}

/** Effective area and waste of fitting W×H into a cw×ch canvas (SPEC §4.2 step 1, §2.3 step 3). */
export function fitScore(W: number, H: number, cw: number, ch: number): { effective: number; waste: number } {
  const s = Math.min(cw / W, ch / H);
  const effective = Math.min(Math.floor(W * s) * Math.floor(H * s), W * H);
  return { effective, waste: cw * ch - effective };
}

/** LLaVA-NeXT select_best_resolution: max effective area, then min waste, first wins on full ties. */
export function selectBestResolution(W: number, H: number, candidates: ReadonlyArray<readonly [number, number]>): [number, number] {
  check(W, H, 'selectBestResolution');
  if (candidates.length === 0) throw new Error('selectBestResolution: no candidate resolutions');
  let best: [number, number] = [candidates[0]![0], candidates[0]![1]];
  let be = -1, bw = Infinity;
  for (const [cw, ch] of candidates) {
    const { effective, waste } = fitScore(W, H, cw, ch);
    if (effective > be || (effective === be && waste < bw)) { best = [cw, ch]; be = effective; bw = waste; }
  }
  return best;
}

/** LLaVA-NeXT resize_and_pad (SPEC §4.2 step 2): the resized image size and its centred offset on the canvas. */
export function resizeAndPad(W: number, H: number, cw: number, ch: number): { w: number; h: number; x: number; y: number } {
  let w: number, h: number;
  if (cw / W < ch / H) { w = cw; h = Math.min(Math.ceil(H * cw / W), ch); }
  else { h = ch; w = Math.min(Math.ceil(W * ch / H), cw); }
  return { w, h, x: Math.floor((cw - w) / 2), y: Math.floor((ch - h) / 2) };
}

/** SliME's local resize (SPEC §2.3 step 4): keep aspect, ceil on the constrained side, centred. */
export function resizeKeepCeil(W: number, H: number, cw: number, ch: number): { w: number; h: number; x: number; y: number } {
  const s = Math.min(cw / W, ch / H);
  const w = Math.min(cw, cw / W === s ? cw : Math.ceil(W * s));
  const h = Math.min(ch, ch / H === s ? ch : Math.ceil(H * s));
  return { w, h, x: Math.floor((cw - w) / 2), y: Math.floor((ch - h) / 2) };
}

/** Tiles of `tile` px cut from a canvas holding the image at `placed` (canvas px), raster order; regions mapped back to image px. */
function tilesOnCanvas(W: number, H: number, canvas: [number, number], placed: { w: number; h: number; x: number; y: number }, tile: number, prefix: string): ViewGeom[] {
  const cols = canvas[0] / tile, rows = canvas[1] / tile;
  const sx = W / placed.w, sy = H / placed.h;
  const out: ViewGeom[] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    out.push({ name: `${prefix}-r${r}-c${c}`, size: [tile, tile], cell: [r, c],
      region: { x: (c * tile - placed.x) * sx, y: (r * tile - placed.y) * sy, w: tile * sx, h: tile * sy } });
  }
  return out;
}

/** SPEC §4.1 grid pinpoints (width, height). */
export const LLAVA_NEXT_PINPOINTS: ReadonlyArray<readonly [number, number]> = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]];

export interface AnyResLayout {
  views: ViewGeom[];
  canvas: [number, number];
  /** Tile grid (cols, rows). */
  grid: [number, number];
  /** Feature rows/cols kept after unpad over the whole (rows·p)×(cols·p) feature grid: [rowStart, rowEnd), [colStart, colEnd). */
  keepRows: [number, number];
  keepCols: [number, number];
}

/**
 * LLaVA-NeXT unpad (SPEC §4.2 step 6) of an h×w feature grid for an original W0×H0 image:
 * the kept row and column ranges.
 */
export function unpadRange(W0: number, H0: number, h: number, w: number): { rows: [number, number]; cols: [number, number] } {
  if (W0 / H0 > w / h) {
    const newH = Math.floor(H0 * w / W0), pad = Math.floor((h - newH) / 2);
    return { rows: [pad, h - pad], cols: [0, w] };
  }
  const newW = Math.floor(W0 * h / H0), pad = Math.floor((w - newW) / 2);
  return { rows: [0, h], cols: [pad, w - pad] };
}

/** LLaVA-NeXT AnyRes (SPEC §4.2): global 336 view of the whole image, then tiles of the best-fit canvas. `side` = patches per tile side (24). */
export function anyResViews(W: number, H: number, tile = 336, side = 24, pinpoints = LLAVA_NEXT_PINPOINTS): AnyResLayout {
  check(W, H, 'anyResViews');
  const canvas = selectBestResolution(W, H, pinpoints);
  const placed = resizeAndPad(W, H, canvas[0], canvas[1]);
  const grid: [number, number] = [canvas[0] / tile, canvas[1] / tile];
  const keep = unpadRange(W, H, grid[1] * side, grid[0] * side);
  return { views: [...singleResize(W, H, tile), ...tilesOnCanvas(W, H, canvas, placed, tile, 'tile')], canvas, grid, keepRows: keep.rows, keepCols: keep.cols };
}

/** Candidate slice counts shared by UHD and SliME: {n, n+1} when n ≤ 2, else {n−1, n, n+1}. */
function candidateCounts(n: number): number[] {
  return n <= 2 ? [n, n + 1] : [n - 1, n, n + 1];
}

/** SliME tiling (SPEC §2.3): n forced into [2, 6]; best (cols, rows) by effective area, then waste, over factor pairs. */
export function slimeGrid(W: number, H: number, tile = 336): [number, number] {
  check(W, H, 'slimeGrid');
  let n = Math.ceil(W * H / (tile * tile));
  if (n > 6) n = 6;
  if (n === 1) n = 2;
  const cands = candidateCounts(n).flatMap(factorPairs);
  const [cw, ch] = selectBestResolution(W, H, cands.map(([c, r]) => [c * tile, r * tile] as const));
  return [cw / tile, ch / tile];
}

/** SliME views: global 336 (plain resize), then tiles of the chosen canvas in raster order. */
export function slimeViews(W: number, H: number, tile = 336): { views: ViewGeom[]; grid: [number, number] } {
  const grid = slimeGrid(W, H, tile);
  const canvas: [number, number] = [grid[0] * tile, grid[1] * tile];
  const placed = resizeKeepCeil(W, H, canvas[0], canvas[1]);
  return { views: [...singleResize(W, H, tile), ...tilesOnCanvas(W, H, canvas, placed, tile, 'tile')], grid };
}

/** UHD slice count N = ceil(W·H/336²) capped at 6 (SPEC §5.2 step 1). */
export function uhdSliceCount(W: number, H: number, tile = 336): number {
  check(W, H, 'uhdSliceCount');
  return Math.min(6, Math.ceil(W * H / (tile * tile)));
}

/** UHD partition (cols m, rows n) minimising |log(m/n) − log(W/H)|; first in ascending-m order wins ties (SPEC §5.2 steps 2–3). */
export function uhdGrid(W: number, H: number, tile = 336): [number, number] {
  const N = uhdSliceCount(W, H, tile);
  const target = Math.log(W / H);
  let best: [number, number] = [1, 1], bd = Infinity;
  for (const k of candidateCounts(N)) for (const [m, n] of factorPairs(k)) {
    const d = Math.abs(Math.log(m / n) - target);
    if (d < bd) { bd = d; best = [m, n]; }
  }
  return best;
}

/** UHD adapt_size (SPEC §5.2 step 5): patch grid (hp, wp) ≤ maxPatches of `patch` px, aspect kept. */
export function uhdAdaptSize(w: number, h: number, patch = 14, maxPatches = 576): { hp: number; wp: number } {
  const s = Math.sqrt(maxPatches * patch * patch / (h * w));
  return { hp: Math.max(1, Math.floor(s * h / patch)), wp: Math.max(1, Math.floor(s * w / patch)) };
}

/** UHD views (paper rules): slices in raster order, each resized by its own adapt_size, then the overview last. */
export function uhdViews(W: number, H: number, tile = 336, patch = 14): { views: ViewGeom[]; grid: [number, number] } {
  const [m, n] = uhdGrid(W, H, tile);
  const views: ViewGeom[] = [];
  for (let j = 0; j < n; j++) for (let i = 0; i < m; i++) {
    const x0 = Math.floor(i * W / m), x1 = Math.floor((i + 1) * W / m);
    const y0 = Math.floor(j * H / n), y1 = Math.floor((j + 1) * H / n);
    const a = uhdAdaptSize(x1 - x0, y1 - y0, patch, (tile / patch) ** 2);
    views.push({ name: `slice-r${j}-c${i}`, size: [a.wp * patch, a.hp * patch], cell: [j, i], region: { x: x0, y: y0, w: x1 - x0, h: y1 - y0 } });
  }
  const o = uhdAdaptSize(W, H, patch, (tile / patch) ** 2);
  views.push({ name: 'overview', size: [o.wp * patch, o.hp * patch], region: { x: 0, y: 0, w: W, h: H } });
  return { views, grid: [m, n] };
}

/** Monkey (SPEC §6.2): resize to 2·win (aspect not kept), 2×2 windows row-major, then a global view at win. */
export function monkeyViews(W: number, H: number, win = 448): ViewGeom[] {
  check(W, H, 'monkeyViews');
  const out: ViewGeom[] = [];
  for (let r = 0; r < 2; r++) for (let c = 0; c < 2; c++) {
    out.push({ name: `window-${r * 2 + c}`, size: [win, win], cell: [r, c], region: { x: c * W / 2, y: r * H / 2, w: W / 2, h: H / 2 } });
  }
  out.push({ name: 'global', size: [win, win], region: { x: 0, y: 0, w: W, h: H } });
  return out;
}

/** Fuyu (SPEC §13.1): scale down to fit 1080×1920 (h×w), pad to whole patches; rows × cols of `patch` px. */
export function fuyuGrid(W: number, H: number, patch = 30, maxH = 1080, maxW = 1920): { w: number; h: number; rows: number; cols: number } {
  check(W, H, 'fuyuGrid');
  let w = W, h = H;
  if (h > maxH || w > maxW) {
    const s = Math.min(maxH / h, maxW / w);
    w = Math.max(1, Math.floor(w * s)); h = Math.max(1, Math.floor(h * s));
  }
  return { w, h, rows: Math.ceil(h / patch), cols: Math.ceil(w / patch) };
}

export function fuyuViews(W: number, H: number, patch = 30): ViewGeom[] {
  const g = fuyuGrid(W, H, patch);
  const s = W / g.w;
  return [{ name: 'patches', size: [g.cols * patch, g.rows * patch], region: { x: 0, y: 0, w: g.cols * patch * s, h: g.rows * patch * s } }];
}
