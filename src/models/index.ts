export { familyFor, knownModelTypes, type ModelFamily } from './registry.ts';
export { loadModel, saveModel } from './load.ts';
export type { CausalLM, KVCache, ForwardOptions } from './causal-lm.ts';
export { LlamaModel } from './llama.ts';
