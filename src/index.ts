// Chimera: re-exports only. Importing selects nothing; call useBackend() once at startup.

export * from './engine/index.ts';
export { useBackend, nativeBackend, referenceBackend, type BackendName } from './backends/index.ts';
export * as nn from './nn/index.ts';
export * as train from './train/index.ts';
export * as io from './io/index.ts';
export * as models from './models/index.ts';
export * as serve from './serve/index.ts';
