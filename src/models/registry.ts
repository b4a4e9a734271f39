// Model families by Hugging Face `model_type`. Each family lives in one file named after it and
// exports `family: ModelFamily`. Modules load lazily; nothing registers itself on import.

import type { Rng } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';

export interface ModelFamily<C = unknown, P = unknown> {
  /** Hugging Face `model_type` (config.json), e.g. 'llama'. */
  readonly modelType: string;
  /** Parses config.json; a missing or invalid key throws naming the key and `source`. */
  parseConfig(json: unknown, source?: string): C;
  /**
   * The parameter tree; flattened paths equal the checkpoint keys. With rng null the tensors are
   * zero-filled, ready to be overwritten by a checkpoint.
   */
  init(cfg: C, rng: Rng | null): P;
  /** Checkpoint keys that are buffers, not parameters (for example rotary inv_freq); skipped on load. */
  readonly ignoreKeys?: readonly RegExp[];
  /**
   * For checkpoints whose key layout differs from the tree's paths (another library's naming):
   * the checkpoint key of each tree path. Absent: keys equal paths.
   */
  checkpointKey?(cfg: C, path: string): string;
  /** Names of the inputs `forward` takes (for `chimera forward`), e.g. ['input_ids'] or ['pixel_values']. */
  readonly inputs: readonly string[];
  /** One inference pass for `chimera forward`: named inputs to named outputs (HF output names). */
  forward(params: P, cfg: C, inputs: Map<string, Tensor>): Map<string, Tensor>;
}

type Loader = () => Promise<ModelFamily>;

// model_type -> module. Aliases map HF names that share an implementation.
const families: Record<string, Loader> = {
  llama: async () => (await import('./llama.ts')).family as ModelFamily,
  clip_vision_model: async () => (await import('./clip-vision.ts')).family as ModelFamily,
  dinov2: async () => (await import('./dinov2.ts')).family as ModelFamily,
  convnext: async () => (await import('./convnext.ts')).family as ModelFamily,
  blip_2_qformer: async () => (await import('./blip2-qformer.ts')).family as ModelFamily,
  chimera_vlm: async () => (await import('./vlm/model.ts')).family as ModelFamily,
  llava: async () => (await import('./vlm/hf-llava.ts')).family as ModelFamily,
};

const aliases: Record<string, string> = {
  mistral: 'llama',
  dinov2_with_registers: 'dinov2',
  clip: 'clip_vision_model',
  'blip-2-qformer': 'blip_2_qformer',
};

export function knownModelTypes(): string[] {
  return Object.keys(families).sort();
}

export async function familyFor(modelType: string): Promise<ModelFamily> {
  const name = Object.hasOwn(aliases, modelType) ? aliases[modelType]! : modelType;
  const load = Object.hasOwn(families, name) ? families[name] : undefined;
  if (load === undefined) throw new Error(`unsupported model_type '${modelType}' (supported: ${knownModelTypes().join(', ')})`);
  return load();
}

/** Test hook: registers (or replaces) a family under `modelType` so loaders can be tested with fakes. */
export function registerFamilyForTest(modelType: string, family: ModelFamily): void {
  families[modelType] = async () => family;
}
