// The op set. Every op takes and returns Tensors and records its gradient when needed.

export * from './core.ts';
export * from './shape.ts';
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './linalg.ts';
export * from './nn.ts';
export * from './conv.ts';
