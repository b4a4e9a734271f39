// The demo model: a tiny SPHINX-1k-shaped system (SPEC §1.6: global view + 2×2 sub-images, all
// four encoders, Q-Former tokens first, [CLIP | ConvNeXt | DINOv2] channel concat) at 56-px views,
// sized to train from nothing on 2 cores within the demo's budget. The Q-Former's image encoder
// has the CLIP tower's shape so stage 1 of BLIP-2 can run on the pre-trained CLIP ViT, frozen.

import { clipConfig, convnextConfig, dinoConfig, llamaConfig } from '../../models/vlm/towers.ts';
import { IMAGE_TOKEN_ID } from '../../models/vlm/create.ts';

export const DEMO_VIEW = 56;

export interface DemoSizes {
  /** Sub-image grid: 2 = global + 2×2 crops (SPHINX-1k), 1 = one global view. */
  grid: number;
  /** Encoders present. */
  encoders: readonly ('qformer' | 'clip' | 'convnext' | 'dinov2')[];
  llmDim: number;
  llmLayers: number;
  vocab: number;
}

export const DEMO_SIZES: DemoSizes = { grid: 2, encoders: ['qformer', 'clip', 'convnext', 'dinov2'], llmDim: 128, llmLayers: 3, vocab: 768 };

export const towerConfigs = {
  clip: (): Record<string, unknown> => clipConfig({ hidden: 32, layers: 2, heads: 2, ffn: 64, image: DEMO_VIEW, patch: 14 }),
  dinov2: (): Record<string, unknown> => dinoConfig({ hidden: 32, layers: 2, heads: 2, image: DEMO_VIEW, patch: 14 }),
  convnext: (): Record<string, unknown> => ({ ...convnextConfig({ dims: [8, 16, 24, 32], depths: [1, 1, 1, 1], image: 64 }), layer_scale_init_value: 0.1 }),
  /** blip_2_qformer config of the tower (its image encoder is the CLIP tower's shape). */
  qformer: (): Record<string, unknown> => ({ model_type: 'blip_2_qformer', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, cross_attention_frequency: 1 }),
  queries: 4,
};

/** config.json of the demo's chimera_vlm model. */
export function demoConfigJson(s: DemoSizes = DEMO_SIZES): Record<string, unknown> {
  const enc = new Set(s.encoders);
  const vision: Record<string, unknown> = { image_size: DEMO_VIEW * s.grid, view_size: DEMO_VIEW, grid: s.grid, convnext_mode: 'upsample', convnext_size: 64 };
  if (enc.has('qformer')) vision.qformer = { vision_config: towerConfigs.clip(), num_query_tokens: towerConfigs.queries, qformer_config: towerConfigs.qformer() };
  if (enc.has('clip')) vision.clip = towerConfigs.clip();
  if (enc.has('convnext')) vision.convnext = towerConfigs.convnext();
  if (enc.has('dinov2')) vision.dinov2 = towerConfigs.dinov2();
  return {
    model_type: 'chimera_vlm', preset: 'sphinx-demo', system: 'sphinx', image_token: '<image>', image_token_id: IMAGE_TOKEN_ID,
    vision_config: vision,
    text_config: llamaConfig({ dim: s.llmDim, layers: s.llmLayers, heads: 4, kvHeads: 2, ffn: 2 * s.llmDim, vocab: s.vocab, maxPos: 512 }),
  };
}
