// Token planner: per-view LLM positions and FLOP estimates for a preset and an image size.
//
// Positions: everything an image inserts into the LLM sequence, including learned start/end
// vectors (SPHINX, CogVLM boi/eoi, XComposer flags), separators the image code inserts (UHD ',' '\n',
// SliME ','), and newline embeddings (LLaVA-NeXT image_newline, Fuyu |NEWLINE|). Wrapper tokens
// the user writes in the prompt text (Qwen <img>…</img>, NExT-GPT <Img>) are text, not counted.
//
// FLOPs (multiply-add = 2 FLOPs; norms, activations, softmax, embeddings ignored):
//   linear in→out over t tokens:         2·in·out·t
//   attention (nq queries, nk keys, inner width c): 2·nq·dq·c + 2·2·nk·dkv·c + 4·nq·nk·c + 2·nq·c·dout
//   transformer block over t tokens:     self-attention(t, t, w) + 2·t·w·ffn·(2 or 3 with GLU)
//   ViT = patch embed 2·(3·p²)·w·patches + depth blocks; ConvNeXt block = 2·HW·(49·C + 8·C²).
//   encoder_flops = Σ views (towers + bridge stages).
//   llm_flops = 2·N_layer·P + attention, with N_layer the per-token matmul params of all layers
//     (q,o: D², k,v: D·D_kv, FFN: 2 or 3·D·ffn, MoE: top-k experts + router) and P the image
//     positions; attention = layers·4·D·Σ_{i=1..P}(i+1), the image starting right after BOS.
//   lm_head is excluded (image positions produce no logits).

import type { Preset, Stage, Tower, LLM } from './presets.ts';
import {
  anyResViews, fuyuGrid, fuyuViews, monkeyViews, singlePadded, singleResize, slimeViews, sphinxViews, uhdViews,
  type ViewGeom,
} from '../vision/views.ts';

export interface PlannedView extends ViewGeom { positions: number; encoderFlops: number }

export interface Plan {
  preset: string;
  image: [number, number];
  detail: 'low' | 'high';
  views: PlannedView[];
  totalPositions: number;
  encoderFlops: number;
  llmFlops: number;
  /** Tile/slice grid (cols, rows) where the scheme chooses one. */
  grid?: [number, number];
  note?: string;
}

export function stageFlops(s: Stage): number {
  switch (s.op) {
    case 'linear': return 2 * s.in * s.out * s.tokens;
    case 'attn': return 2 * s.nq * s.dq * s.inner + 4 * s.nk * s.dkv * s.inner + 4 * s.nq * s.nk * s.inner + 2 * s.nq * s.inner * s.dout;
    case 'block': {
      const t = s.tokens, w = s.width;
      const one = stageFlops({ op: 'attn', nq: t, nk: t, dq: w, dkv: w, inner: w, dout: w }) + 2 * t * w * s.ffn * (s.glu ? 3 : 2);
      return one * (s.repeat ?? 1);
    }
  }
}

export function towerFlops(t: Tower): number {
  switch (t.kind) {
    case 'none': return 0;
    case 'vit': {
      const g = Math.floor(t.image / t.patch), patches = g * g, tokens = patches + (t.cls ? 1 : 0);
      const block: Stage = { op: 'block', tokens, width: t.width, ffn: t.ffn, repeat: t.depth, ...(t.glu ? { glu: true } : {}) };
      return 2 * 3 * t.patch * t.patch * t.width * patches + stageFlops(block);
    }
    case 'convnext': {
      let f = 0, res = t.image / 4;
      f += 2 * 3 * 16 * t.dims[0]! * res * res; // 4×4 stem
      for (let s = 0; s < t.dims.length; s++) {
        const C = t.dims[s]!;
        if (s > 0) { res /= 2; f += 2 * 4 * t.dims[s - 1]! * C * res * res; } // 2×2 downsample
        f += t.depths[s]! * 2 * res * res * (49 * C + 8 * C * C);
      }
      return f;
    }
  }
}

/** Per-token matmul parameters of all LLM layers (active ones for MoE). */
export function llmParamsPerToken(m: LLM): number {
  const kv = m.dim / m.heads * m.kvHeads;
  const attn = 2 * m.dim * m.dim + 2 * m.dim * kv;
  const ffn = (m.ffnKind === 'swiglu' ? 3 : 2) * m.dim * m.ffn;
  if (!m.moe) return m.layers * (attn + ffn);
  const moeLayers = Math.ceil(m.layers / m.moe.every), dense = m.layers - moeLayers;
  return m.layers * attn + dense * ffn + moeLayers * (m.moe.topk * ffn + m.dim * m.moe.experts);
}

export function llmFlops(m: LLM, positions: number): number {
  const P = positions;
  return 2 * llmParamsPerToken(m) * P + m.layers * 4 * m.dim * (P * (P + 1) / 2 + P);
}

export function plan(p: Preset, W: number, H: number, detail: 'low' | 'high' = 'high'): Plan {
  if (!Number.isInteger(W) || !Number.isInteger(H) || W < 1 || H < 1) throw new Error(`plan: image size must be positive integers, got ${W}x${H}`);
  const enc = p.towers.reduce((a, t) => a + towerFlops(t), 0);
  const bridgeG = p.bridge.global.reduce((a, s) => a + stageFlops(s), 0);
  const bridgeL = (p.bridge.local ?? p.bridge.global).reduce((a, s) => a + stageFlops(s), 0);
  const g = (v: ViewGeom, positions: number): PlannedView => ({ ...v, positions, encoderFlops: enc + bridgeG });
  const l = (v: ViewGeom, positions: number): PlannedView => ({ ...v, positions, encoderFlops: enc + bridgeL });
  const local = p.tokens.local ?? p.tokens.global;
  let views: PlannedView[];
  let grid: [number, number] | undefined;
  const s = p.scheme;
  switch (s.kind) {
    case 'single-resize': views = singleResize(W, H, s.size).map((v) => g(v, p.tokens.global)); break;
    case 'single-pad': views = singlePadded(W, H, s.size).map((v) => g(v, p.tokens.global)); break;
    case 'sphinx': {
      const vs = sphinxViews(W, H, detail === 'low' ? 1 : s.grid, s.view);
      views = vs.map((v) => g(v, p.tokens.global));
      if (s.grid > 1) grid = [s.grid, s.grid];
      break;
    }
    case 'anyres': {
      const a = anyResViews(W, H, s.tile, s.tile / 14);
      grid = a.grid;
      if (detail === 'low') { views = [g(a.views[0]!, p.tokens.global + 1)]; break; } // one view: 576 + a single image_newline
      const side = s.tile / 14;
      views = [g(a.views[0]!, p.tokens.global)];
      for (const v of a.views.slice(1)) {
        const [r, c] = v.cell!;
        const rows = Math.max(0, Math.min(a.keepRows[1], (r + 1) * side) - Math.max(a.keepRows[0], r * side));
        const cols = Math.max(0, Math.min(a.keepCols[1], (c + 1) * side) - Math.max(a.keepCols[0], c * side));
        views.push(l(v, rows * cols + (c === a.grid[0] - 1 ? rows : 0))); // newline column after the last tile of each row
      }
      break;
    }
    case 'uhd': {
      const u = uhdViews(W, H, s.tile);
      grid = u.grid;
      const ov = u.views[u.views.length - 1]!;
      views = detail === 'low' ? [g(ov, p.tokens.global)] : [...u.views.slice(0, -1).map((v) => l(v, local)), g(ov, p.tokens.global)];
      break;
    }
    case 'slime': {
      const sl = slimeViews(W, H, s.tile);
      grid = sl.grid;
      views = detail === 'low' ? [g(sl.views[0]!, p.tokens.global - 1)] : [g(sl.views[0]!, p.tokens.global), ...sl.views.slice(1).map((v) => l(v, local))];
      break;
    }
    case 'monkey': {
      const m = monkeyViews(W, H, s.window);
      const gl = m[m.length - 1]!;
      views = detail === 'low' ? [g(gl, p.tokens.global)] : [...m.slice(0, -1).map((v) => l(v, local)), g(gl, p.tokens.global)];
      grid = [2, 2];
      break;
    }
    case 'fuyu': {
      const f = fuyuGrid(W, H, s.patch);
      const v = fuyuViews(W, H, s.patch)[0]!;
      const patches = f.rows * f.cols;
      views = [{ ...v, positions: patches + f.rows, encoderFlops: 2 * 3 * s.patch * s.patch * p.llm.dim * patches }];
      grid = [f.cols, f.rows];
      break;
    }
  }
  const totalPositions = views.reduce((a, v) => a + v.positions, 0);
  const encoderFlops = views.reduce((a, v) => a + v.encoderFlops, 0);
  let llm = llmFlops(p.llm, totalPositions);
  if (p.xattn) llm += views.length * p.xattn.layers * 2 * 2 * p.xattn.media * p.xattn.mediaDim * p.xattn.inner;
  return { preset: p.name, image: [W, H], detail, views, totalPositions, encoderFlops, llmFlops: llm,
    ...(grid ? { grid } : {}), ...(p.note ? { note: p.note } : {}) };
}
