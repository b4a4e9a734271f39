// Drawing into Float32 RGB canvases (HWC, [0,1]) for the built-in corpus: filled shapes,
// alpha-mask blits with bilinear scaling, and text in a 5×7 bitmap font defined here.
// Pixels are covered when their centre (x+0.5, y+0.5) lies inside the shape.

import type { Box, RgbImage } from './types.ts';

export type Color = readonly [number, number, number];

export function newCanvas(width: number, height: number, bg: Color): RgbImage {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) throw new Error(`canvas size must be positive integers, got ${width}x${height}`);
  const data = new Float32Array(width * height * 3);
  for (let i = 0; i < width * height; i++) { data[3 * i] = bg[0]; data[3 * i + 1] = bg[1]; data[3 * i + 2] = bg[2]; }
  return { width, height, data };
}

function put(img: RgbImage, x: number, y: number, c: Color, a = 1): void {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
  const i = (y * img.width + x) * 3, d = img.data;
  d[i] = d[i]! * (1 - a) + c[0] * a; d[i + 1] = d[i + 1]! * (1 - a) + c[1] * a; d[i + 2] = d[i + 2]! * (1 - a) + c[2] * a;
}

/** Fills pixels whose centre satisfies `inside` within the clipped bounding box; returns the tight pixel box drawn (null if none). */
function fillWhere(img: RgbImage, bx: Box, c: Color, inside: (px: number, py: number) => boolean): Box | null {
  const x0 = Math.max(0, Math.floor(bx[0])), y0 = Math.max(0, Math.floor(bx[1]));
  const x1 = Math.min(img.width, Math.ceil(bx[2])), y1 = Math.min(img.height, Math.ceil(bx[3]));
  let mx = Infinity, my = Infinity, Mx = -Infinity, My = -Infinity;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      if (!inside(x + 0.5, y + 0.5)) continue;
      put(img, x, y, c);
      if (x < mx) mx = x; if (x > Mx) Mx = x; if (y < my) my = y; if (y > My) My = y;
    }
  }
  return mx === Infinity ? null : [mx, my, Mx + 1, My + 1];
}

export function fillRect(img: RgbImage, b: Box, c: Color): Box | null {
  return fillWhere(img, b, c, (x, y) => x >= b[0] && x < b[2] && y >= b[1] && y < b[3]);
}

export function fillCircle(img: RgbImage, cx: number, cy: number, r: number, c: Color): Box | null {
  return fillWhere(img, [cx - r, cy - r, cx + r, cy + r], c, (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r);
}

/** Convex or concave polygon by the even-odd rule. */
export function fillPolygon(img: RgbImage, pts: readonly (readonly [number, number])[], c: Color): Box | null {
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const inside = (x: number, y: number): boolean => {
    let odd = false;
    for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
      const [xi, yi] = pts[i]!, [xj, yj] = pts[j]!;
      if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) odd = !odd;
    }
    return odd;
  };
  return fillWhere(img, [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)], c, inside);
}

/**
 * Blends colour `c` through a grey alpha mask (u8 [sh, sw], 255 = opaque) scaled bilinearly to
 * w×h at (x, y). Returns the tight box of pixels with alpha >= `boxThreshold` (null if none).
 */
export function blitMask(img: RgbImage, mask: Uint8Array, sw: number, sh: number, x: number, y: number, w: number, h: number, c: Color, boxThreshold = 0.2): Box | null {
  let mx = Infinity, my = Infinity, Mx = -Infinity, My = -Infinity;
  for (let ty = 0; ty < h; ty++) {
    const sy = Math.min(sh - 1, Math.max(0, ((ty + 0.5) * sh) / h - 0.5));
    const y0 = Math.floor(sy), y1 = Math.min(sh - 1, y0 + 1), fy = sy - y0;
    for (let tx = 0; tx < w; tx++) {
      const sx = Math.min(sw - 1, Math.max(0, ((tx + 0.5) * sw) / w - 0.5));
      const x0 = Math.floor(sx), x1 = Math.min(sw - 1, x0 + 1), fx = sx - x0;
      const a = ((mask[y0 * sw + x0]! * (1 - fx) + mask[y0 * sw + x1]! * fx) * (1 - fy) + (mask[y1 * sw + x0]! * (1 - fx) + mask[y1 * sw + x1]! * fx) * fy) / 255;
      if (a <= 0) continue;
      const px = x + tx, py = y + ty;
      if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
      put(img, px, py, c, a);
      if (a >= boxThreshold) { if (px < mx) mx = px; if (px > Mx) Mx = px; if (py < my) my = py; if (py > My) My = py; }
    }
  }
  return mx === Infinity ? null : [mx, my, Mx + 1, My + 1];
}

// 5×7 glyphs, one byte per row (bit 4 = leftmost column).
const GLYPHS: Record<string, readonly number[]> = {
  A: [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11], B: [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
  C: [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e], D: [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
  E: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f], F: [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
  G: [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f], H: [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
  I: [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e], J: [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
  K: [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11], L: [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
  M: [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11], N: [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
  O: [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e], P: [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
  Q: [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d], R: [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
  S: [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e], T: [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
  U: [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e], V: [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
  W: [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a], X: [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
  Y: [0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04], Z: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
  0: [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e], 1: [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  2: [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f], 3: [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  4: [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02], 5: [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  6: [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e], 7: [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  8: [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e], 9: [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  ' ': [0, 0, 0, 0, 0, 0, 0],
};

export const GLYPH_W = 5, GLYPH_H = 7;

/** Pixel size of `text` at integer `scale` (1 px gap between glyphs). */
export function textSize(text: string, scale: number): [number, number] {
  return [Math.max(0, text.length * (GLYPH_W + 1) - 1) * scale, GLYPH_H * scale];
}

/** Draws upper-case letters, digits and spaces; returns the tight box of lit pixels. */
export function drawText(img: RgbImage, text: string, x: number, y: number, scale: number, c: Color): Box | null {
  if (!Number.isInteger(scale) || scale < 1) throw new Error(`text scale must be a positive integer, got ${scale}`);
  let mx = Infinity, my = Infinity, Mx = -Infinity, My = -Infinity;
  [...text.toUpperCase()].forEach((ch, k) => {
    const g = GLYPHS[ch];
    if (!g) throw new Error(`drawText: no glyph for '${ch}' (A-Z, 0-9 and space)`);
    for (let r = 0; r < GLYPH_H; r++) {
      for (let col = 0; col < GLYPH_W; col++) {
        if (!((g[r]! >> (GLYPH_W - 1 - col)) & 1)) continue;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const px = Math.round(x) + (k * (GLYPH_W + 1) + col) * scale + dx, py = Math.round(y) + r * scale + dy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
            put(img, px, py, c);
            if (px < mx) mx = px; if (px > Mx) Mx = px; if (py < my) my = py; if (py > My) My = py;
          }
        }
      }
    }
  });
  return mx === Infinity ? null : [mx, my, Mx + 1, My + 1];
}
