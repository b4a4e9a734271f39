// Tiny multimodal models built in memory from a preset, and seeded test images.

import { useBackend } from '../../src/backends/index.ts';
import { Rng } from '../../src/engine/rng.ts';
import { untracked } from '../../src/engine/tensor.ts';
import { tokenizerFromJson, type Tokenizer } from '../../src/io/tokenizer.ts';
import { builtinTokenizer, IMAGE_TOKEN_ID } from '../../src/models/vlm/create.ts';
import { initVlm, parseVlmConfig, VlmModel } from '../../src/models/vlm/model.ts';
import { presetConfig } from '../../src/models/vlm/systems.ts';
import type { RgbImage } from '../../src/vision/preprocess.ts';

useBackend('auto');

/** A tiny preset (`name:tiny` config) with random weights; every leaf requires grad. */
export function tinyModel(preset: string, seed = 0, patch: (cfg: Record<string, unknown>) => void = () => {}): VlmModel {
  const pc = presetConfig(preset.includes(':') ? preset : `${preset}:tiny`);
  const json: Record<string, unknown> = { model_type: 'chimera_vlm', preset: pc.preset, system: pc.system, image_token_id: IMAGE_TOKEN_ID, vision_config: pc.vision_config, text_config: pc.text_config };
  patch(json);
  const cfg = parseVlmConfig(json, `preset ${preset}`);
  return new VlmModel(untracked(() => initVlm(cfg, new Rng(seed))), cfg);
}

let tok: Tokenizer | null = null;
export function tinyTokenizer(): Tokenizer {
  if (tok === null) {
    const t = builtinTokenizer(512);
    tok = tokenizerFromJson(t.tokenizerJson, t.tokenizerConfig);
  }
  return tok;
}

/** A smooth seeded RGB image W x H in [0, 1]. */
export function testImage(W: number, H: number, seed = 1): RgbImage {
  const r = new Rng(seed);
  const a = [r.uniform(), r.uniform(), r.uniform()], f = 1 + 4 * r.uniform();
  const data = new Float32Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) {
    data[(y * W + x) * 3 + c] = 0.5 + 0.5 * Math.sin(f * (x / W + a[c]!) * 6.28 + (c + 1) * y / H * 3);
  }
  return { width: W, height: H, data };
}
