// Types shared by the data layer. `RgbImage` is structurally identical to
// src/vision/preprocess.ts RgbImage (data may not import vision; structural typing joins them).

/** HWC RGB pixels in [0,1]: data[(y * width + x) * 3 + c], [H, W, 3]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** A box in original-image pixels, [x1, y1, x2, y2], x2 >= x1, y2 >= y1. */
export type Box = [number, number, number, number];

/** A box in SPHINX's padded-square convention: [x1, y1, x2, y2] in [0,1] (see tasks.ts). */
export type NormBox = [number, number, number, number];

export type Role = 'human' | 'gpt';

/** One LLaVA-style turn. `value` may hold `<image>` placeholders. */
export interface Turn {
  from: Role;
  value: string;
}

export const IMAGE_PLACEHOLDER = '<image>';

export type Domain = 'real' | 'synthetic';
export type Split = 'train' | 'val' | 'test';
