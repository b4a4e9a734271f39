// The contract every multimodal system (SPHINX, LLaVA, Flamingo, ...) implements to plug into the
// composable model of model.ts. A system owns its encoders and bridge (one parameter subtree per
// top-level key), its preprocessing, how many LLM positions an image takes, and optional decoder
// hooks; the core owns the language model, sequence assembly, losses, caching and serving.
//
// Dims: V views, N image positions, D LLM width, B rows, T positions in a step.

import type { Rng } from '../../engine/rng.ts';
import type { Tensor } from '../../engine/tensor.ts';
import type { RgbImage } from '../../vision/preprocess.ts';
import type { ViewGeom } from '../../vision/views.ts';
import type { ConfigReader } from '../config.ts';
import type { DecoderHooks, LlamaConfig, LlamaParams } from '../llama.ts';

export type Detail = 'low' | 'high';

/** One image after preprocessing, ready for `encode`. */
export interface PreparedImage {
  /** Original [width, height]. */
  size: [number, number];
  detail: Detail;
  views: ViewGeom[];
  /** LLM positions `encode` returns for it (0 for cross-attention systems). */
  positions: number;
  /** Pixel tensors by name (system-defined), e.g. clip: [V, 3, 224, 224]. Owned by the PreparedImage. */
  pixels: Record<string, Tensor>;
  /** Scheme details a system keeps between prepare and encode (grid, unpadding, ...). */
  meta?: Record<string, unknown>;
  /** Ids of the instruction that goes with the image (text-guided bridges: SliME, LLaMA-VID, InstructBLIP). */
  instruction?: readonly number[];
}

export interface EncodeContext {
  llm: LlamaConfig;
  /** The language model's weights (bridges that embed text with the LLM's table). */
  lm: LlamaParams;
}

/** What the decoder hooks of one step see. Per-position arrays are [B * T], row-major. */
export interface HookStep {
  B: number;
  T: number;
  /** Positions already in the cache. */
  P: number;
  /** 1 where the position holds an image embedding (CogVLM's visual expert). */
  imageMask: Uint8Array;
  /** Index (into `media[b]`) of the latest image at or before the position, -1 when none (Flamingo). */
  mediaIndex: Int32Array;
  /** Per row, the encoded images that take no positions (cross-attention media), in order. */
  media: Tensor[][];
  /** Per row, whether the sample carries any image (LaVIN's modality router). */
  hasImage: boolean[];
}

export interface SystemHooks extends DecoderHooks {
  /** Auxiliary losses the step accumulated (MoE balance), already weighted; null when none. */
  auxLoss?(): Tensor | null;
}

export interface SystemInfo {
  /** Conversation template name (see templates.ts). */
  template: string;
  /**
   * 'after-bos': with no placeholder in the text, every image goes right after BOS (SPHINX);
   * 'placeholder': each `<image>` placeholder is replaced by its image's positions.
   */
  layout: 'after-bos' | 'placeholder';
  /** Cross-attention systems keep the placeholder token in the text; images then take 0 positions. */
  keepPlaceholder: boolean;
  /** Stage name -> globs over parameter paths that train in that stage ("*" within a segment, "**" across). */
  stages: Record<string, readonly string[]>;
  /** Images one prompt may carry. */
  maxImages: number;
  /** Stop strings besides EOS. */
  stopStrings: readonly string[];
  sampling: { temperature: number; topP: number };
}

/**
 * A system. `params` given to encode and hooks is the model's whole tree: the system's own keys
 * (P) plus `language_model`.
 */
export interface VlmSystem<C = unknown, P = unknown> {
  /** The value of "system" in config.json. */
  readonly name: string;
  /** Parses "vision_config"; errors name the key and `source`. */
  parseConfig(r: ConfigReader, llm: LlamaConfig): C;
  info(cfg: C): SystemInfo;
  /**
   * Encoder and bridge parameters (top-level keys of the model's tree). rng null: zeros. Systems
   * that change decoder layers (MoE feed-forwards) may edit `lm` in place (e.g. set a layer's
   * mlp to null and attach `block_sparse_moe`), so its keys follow the layer's checkpoint layout.
   */
  init(cfg: C, llm: LlamaConfig, rng: Rng | null, lm: LlamaParams): P;
  /** Image positions and views of a W x H image without pixels. */
  plan(cfg: C, width: number, height: number, detail: Detail): { views: ViewGeom[]; positions: number };
  /** Pixels -> PreparedImage; positions must equal plan()'s. */
  prepare(cfg: C, image: RgbImage, detail: Detail): PreparedImage;
  /**
   * Embeds images: one tensor per image, [positions, D] (or, with positions 0, the media tokens
   * the decoder hooks attend to). Records a graph when grad is on and trainable parts need it;
   * frozen encoders should run under noGrad.
   */
  encode(cfg: C, params: P & { language_model: LlamaParams }, images: readonly PreparedImage[], ctx: EncodeContext): Tensor[];
  /** Decoder hooks for one step; absent for systems that only splice embeddings. */
  hooks?(cfg: C, params: P & { language_model: LlamaParams }, llm: LlamaConfig, step: HookStep): SystemHooks;
}

/** The config.json "vision_config" and "text_config" of a preset, at real or tiny size. */
export interface PresetConfig {
  system: string;
  vision_config: Record<string, unknown>;
  text_config: Record<string, unknown>;
}

export interface PresetDef {
  /** Preset name as the CLI spells it (`sphinx-tiny`, `llava-1.5`). */
  name: string;
  system: string;
  /** Real size: the published model's shapes. */
  real(): PresetConfig;
  /** A few-hundred-kilobyte variant with the same structure for tests and CPU training. */
  tiny(): PresetConfig;
}
