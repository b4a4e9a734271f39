// Hugging Face LlavaForConditionalGeneration folders (config.json model_type "llava", e.g.
// llava-hf/llava-1.5-7b-hf) loaded as Chimera's `llava` system: the HF config is translated
// (missing keys take transformers' LlamaConfig / CLIPVisionConfig defaults) and tree paths map to
// HF's checkpoint keys: multi_modal_projector.linear_{1,2} for mm_projector.{0,2}; vision_tower.*
// and language_model.* are shared. Preprocessing is HF's CLIPImageProcessor (shortest edge, centre
// crop), not LLaVA's pad-to-square.

import { ConfigReader } from '../config.ts';
import type { ModelFamily } from '../registry.ts';
import { family as vlm, parseVlmConfig, type VlmConfig, type VlmParams } from './model.ts';

const LLAMA_DEFAULTS = {
  model_type: 'llama', vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32,
  max_position_embeddings: 2048, rms_norm_eps: 1e-6, rope_theta: 10000, bos_token_id: 1, eos_token_id: 2,
};
const CLIP_DEFAULTS = {
  model_type: 'clip_vision_model', hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12,
  image_size: 224, patch_size: 32, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};

/** The chimera_vlm config.json equivalent of an HF LlavaConfig. */
export function translateHfLlava(json: unknown, source = 'config.json'): Record<string, unknown> {
  const r = new ConfigReader(json, source);
  const act = r.str('projector_hidden_act', 'gelu');
  if (act !== 'gelu') throw new Error(`${source}: 'projector_hidden_act' ${JSON.stringify(act)} is not supported (only "gelu", LLaVA-1.5's mlp2x_gelu)`);
  if (!r.bool('multimodal_projector_bias', true)) throw new Error(`${source}: 'multimodal_projector_bias' false is not supported`);
  const strategy = r.str('vision_feature_select_strategy', 'default', ['default', 'full'] as const);
  const layer = r.raw('vision_feature_layer') ?? -2;
  if (typeof layer !== 'number' || !Number.isInteger(layer)) throw new Error(`${source}: 'vision_feature_layer' must be one integer (lists of layers are not supported), got ${JSON.stringify(layer)}`);
  r.sub('vision_config');
  r.sub('text_config');
  const text = { ...LLAMA_DEFAULTS, ...(r.raw('text_config') as Record<string, unknown>) };
  const vision = { ...CLIP_DEFAULTS, ...(r.raw('vision_config') as Record<string, unknown>) };
  return {
    model_type: 'chimera_vlm', preset: 'llava-1.5 (Hugging Face layout)', system: 'llava',
    image_token: '<image>', image_token_id: r.int('image_token_index', 32000, 0),
    vision_config: {
      vision_tower: vision, mm_projector_type: 'mlp2x_gelu', mm_vision_select_layer: layer,
      mm_vision_select_feature: strategy === 'default' ? 'patch' : 'cls_patch', image_aspect_ratio: 'crop',
    },
    text_config: text,
  };
}

export const family: ModelFamily<VlmConfig, VlmParams> = {
  modelType: 'llava',
  parseConfig: (json, source = 'config.json') => parseVlmConfig(translateHfLlava(json, source), source),
  init: vlm.init,
  ignoreKeys: vlm.ignoreKeys ?? [],
  inputs: vlm.inputs,
  forward: vlm.forward,
  checkpointKey(_cfg, path) {
    const m = /^mm_projector\.(0|2)\.(.*)$/.exec(path);
    return m === null ? path : `multi_modal_projector.linear_${m[1] === '0' ? 1 : 2}.${m[2]}`;
  },
};
