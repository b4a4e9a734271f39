// Encoder pre-training entry points and the tower folders they write: config.json +
// model.safetensors in the tower's Hugging Face family format (clip_vision_model, dinov2,
// convnext; the Q-Former as blip_2_qformer with query_tokens.safetensors and the frozen image
// encoder it was trained over in vision/), plus pretrain.json (losses and the held-out probe).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tensor } from '../../engine/tensor.ts';
import { writeFileAtomic, writeSafetensors } from '../../io/safetensors.ts';
import { saveModel } from '../../models/load.ts';
import type { PretrainResult } from './clip.ts';

export * from './common.ts';
export { pretrainClip } from './clip.ts';
export { pretrainDino } from './dino.ts';
export { pretrainSupervised } from './supervised.ts';
export { pretrainQFormer } from './qformer.ts';
export type { PretrainResult } from './clip.ts';

export const PRETRAIN_KINDS = ['clip', 'dino', 'supervised', 'qformer'] as const;
export type PretrainKind = (typeof PRETRAIN_KINDS)[number];

const MODEL_TYPE: Record<PretrainKind, string> = { clip: 'clip_vision_model', dino: 'dinov2', supervised: 'convnext', qformer: 'blip_2_qformer' };

function writeJson(file: string, v: unknown): void {
  const bytes = Buffer.from(`${JSON.stringify(v, null, 2)}\n`, 'utf8');
  writeFileAtomic(file, (fd) => { fs.writeSync(fd, bytes); });
}

/** Writes a pre-trained tower folder. For 'qformer', `extra` carries the frozen image encoder and the query count. */
export function saveTower(dir: string, kind: PretrainKind, configJson: Record<string, unknown>, r: PretrainResult<unknown>, extra?: { vision: { config: Record<string, unknown>; params: unknown }; queries: number }): void {
  fs.mkdirSync(dir, { recursive: true });
  if (kind === 'qformer') {
    if (!extra) throw new Error('saveTower: the qformer tower needs its image encoder');
    const p = r.params as { query_tokens: Tensor; qformer: unknown };
    const enc = (extra.vision.config['hidden_size'] as number);
    saveModel(dir, MODEL_TYPE.qformer, { ...configJson, encoder_hidden_size: enc, use_qformer_text_input: false, num_query_tokens: extra.queries }, p.qformer);
    const q = p.query_tokens;
    writeSafetensors(path.join(dir, 'query_tokens.safetensors'), new Map([['query_tokens', { dtype: 'F32', shape: q.shape, data: q.data }]]) as never);
    saveModel(path.join(dir, 'vision'), 'clip_vision_model', extra.vision.config, extra.vision.params);
  } else {
    saveModel(dir, MODEL_TYPE[kind], configJson, r.params);
  }
  writeJson(path.join(dir, 'pretrain.json'), { kind, steps: r.losses.length, seconds: r.seconds, loss_first: r.first, loss_last: r.last, probe: r.probe, losses: r.losses });
}
