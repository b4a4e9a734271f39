// Hugging Face LlavaForConditionalGeneration folders load as the llava system: HF config defaults,
// HF checkpoint key names, HF preprocessing (shortest edge + centre crop).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { noGrad } from '../src/engine/autograd.ts';
import * as F from '../src/engine/ops/index.ts';
import type { Tensor } from '../src/engine/tensor.ts';
import { flatten } from '../src/engine/tree.ts';
import { writeSafetensors } from '../src/io/safetensors.ts';
import { loadModel } from '../src/models/load.ts';
import { translateHfLlava } from '../src/models/vlm/hf-llava.ts';
import { parseVlmConfig, VlmModel, type VlmConfig, type VlmParams } from '../src/models/vlm/model.ts';
import { allclose } from './util.ts';
import { testImage, tinyModel } from './helpers/vlm.ts';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'chimera-hfllava-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

test('the llava-hf/llava-1.5-7b-hf config.json parses with transformers defaults: 576 positions at 336, Vicuna-7B dims', () => {
  const hf = {
    architectures: ['LlavaForConditionalGeneration'], ignore_index: -100, image_token_index: 32000, model_type: 'llava',
    pad_token_id: 32001, projector_hidden_act: 'gelu',
    text_config: { _name_or_path: 'lmsys/vicuna-7b-v1.5', architectures: ['LlamaForCausalLM'], max_position_embeddings: 4096, model_type: 'llama', pad_token_id: 0, rms_norm_eps: 1e-5, torch_dtype: 'float16', vocab_size: 32064 },
    tie_word_embeddings: false, torch_dtype: 'float16', vision_config: { hidden_size: 1024, image_size: 336, intermediate_size: 4096, model_type: 'clip_vision_model', num_attention_heads: 16, num_hidden_layers: 24, patch_size: 14, projection_dim: 768, vocab_size: 32000 },
    vision_feature_layer: -2, vision_feature_select_strategy: 'default', vocab_size: 32064,
  };
  const cfg = parseVlmConfig(translateHfLlava(hf));
  assert.equal(cfg.text.hiddenSize, 4096);
  assert.equal(cfg.text.numLayers, 32);
  assert.equal(cfg.text.vocabSize, 32064);
  assert.equal(cfg.imageTokenId, 32000);
  assert.equal(cfg.system.plan(cfg.vision, 640, 480, 'high').positions, 576);
  assert.throws(() => translateHfLlava({ ...hf, projector_hidden_act: 'relu' }), /projector_hidden_act/);
  assert.throws(() => translateHfLlava({ ...hf, vision_feature_layer: [-2, -5] }), /lists of layers/);
});

test('an HF-layout folder (multi_modal_projector.linear_*) loads and computes what the same weights compute in Chimera', async () => {
  const m = tinyModel('llava-1.5', 9, (json) => { (json.vision_config as Record<string, unknown>).image_aspect_ratio = 'crop'; });
  const vc = (m.config.vision as { vision: { json: Record<string, unknown> } }).vision.json;
  const hf = { model_type: 'llava', image_token_index: m.config.imageTokenId, projector_hidden_act: 'gelu', vision_feature_layer: -2, vision_feature_select_strategy: 'default',
    vision_config: vc, text_config: { hidden_size: m.config.text.hiddenSize, intermediate_size: m.config.text.intermediateSize, num_hidden_layers: m.config.text.numLayers,
      num_attention_heads: m.config.text.numHeads, num_key_value_heads: m.config.text.numKvHeads, vocab_size: m.config.text.vocabSize, rms_norm_eps: m.config.text.rmsNormEps, max_position_embeddings: 2048 } };
  const dir = path.join(TMP, 'hf');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hf));
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
  for (const [k, t] of flatten<Tensor>(m.params)) {
    const key = k.replace(/^mm_projector\.0\./, 'multi_modal_projector.linear_1.').replace(/^mm_projector\.2\./, 'multi_modal_projector.linear_2.');
    tensors[key] = { dtype: 'F32', shape: [...t.shape], data: F.denseData(t).slice() };
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  const loaded = await loadModel<VlmConfig, VlmParams>(dir);
  const hfModel = new VlmModel(loaded.params, loaded.config);
  noGrad(() => {
    const img = testImage(70, 40, 5);
    const ids = [1, 30, m.config.imageTokenId, 31, 32];
    const a = m.forward([{ ids, images: [m.prepareImage(img)] }]).logits;
    const b = hfModel.forward([{ ids, images: [hfModel.prepareImage(img)] }]).logits;
    allclose(F.denseData(b), F.denseData(a), { atol: 1e-5 });
    const view = hfModel.planImage(70, 40, 'high').views[0]!;
    assert.deepEqual(view.region, { x: 15, y: 0, w: 40, h: 40 }, 'HF centre crop, not a padded square');
  });
  fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'x.safetensors'));
  const renamed: Record<string, unknown> = {};
  for (const [k, t] of flatten<Tensor>(m.params)) renamed[k] = { dtype: 'F32', shape: [...t.shape], data: F.denseData(t).slice() };
  writeSafetensors(path.join(dir, 'model.safetensors'), renamed as never);
  await assert.rejects(loadModel(dir), /missing key.*multi_modal_projector\.linear_1/);
});
