// Child process of the kill -9 test: saves checkpoints of a ~2M-parameter model in a loop; the
// weights of save k are a known function of k, so the parent can tell which save it loaded.
// Usage: node train-saver.js ROOT. Prints "saved K" after each completed save.

import { flatten } from '../../src/engine/tree.ts';
import type { Tensor } from '../../src/engine/tensor.ts';
import { saveCheckpoint } from '../../src/train/checkpoint.ts';
import { tinyModel } from './vlm.ts';

export const SAVER_TEXT = { hidden_size: 192, intermediate_size: 512, num_hidden_layers: 4 };

/** Value of parameter number j (in flatten order) at save k. */
export function saverValue(k: number, j: number): number {
  return k * 1000 + j;
}

function saverModel(): { model: ReturnType<typeof tinyModel>; config: { preset: string }; vision: unknown; text: unknown } {
  let vision: unknown, text: unknown;
  const model = tinyModel('llava-1.5', 0, (cfg) => {
    cfg['text_config'] = { ...(cfg['text_config'] as object), ...SAVER_TEXT };
    vision = cfg['vision_config'];
    text = cfg['text_config'];
  });
  return { model, config: { preset: model.config.preset }, vision, text };
}

async function main(root: string): Promise<void> {
  const { model, vision, text } = saverModel();
  const configJson = { model_type: 'chimera_vlm', preset: model.config.preset, system: 'llava', image_token_id: 4, vision_config: vision, text_config: text };
  const leaves = [...flatten<Tensor>(model.params).values()];
  for (let k = 1; ; k++) {
    const optimizer = new Map<string, Float32Array>();
    leaves.forEach((t, j) => {
      t.data.fill(saverValue(k, j));
      if (j % 2 === 0) optimizer.set(`g0.p${j}.exp_avg`, new Float32Array(t.size).fill(k));
    });
    saveCheckpoint(root, { step: k, modelType: 'chimera_vlm', configJson, params: model.params, optimizer, state: { k } }, { keepLast: 2 });
    process.stdout.write(`saved ${k}\n`);
  }
}

if (process.argv[1]?.endsWith('train-saver.js') && process.argv[2]) await main(process.argv[2]);
