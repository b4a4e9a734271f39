export * from './init.ts';
export * from './linear.ts';
export * from './norm.ts';
export * from './vit.ts';
export * from './moe.ts';
