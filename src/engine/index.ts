// Public surface of the engine: tensors, autograd, ops, trees, RNG and the backend contract.

export { Tensor, Storage, tidy, keep, untracked, liveBuffers, empty, fromData } from './tensor.ts';
export { backward, noGrad, isGradEnabled, param, record } from './autograd.ts';
export { backend, setBackend, hasBackend, type Backend } from './backend.ts';
export * from './dtype.ts';
export * from './shape.ts';
export { Rng, manualSeed, defaultRng } from './rng.ts';
export { flatten as flattenTree, mapTree, unflatten, trainable, type Tree } from './tree.ts';
export * as F from './ops/index.ts';
