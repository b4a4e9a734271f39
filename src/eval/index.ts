export * from './vqa.ts';
export * from './yesno.ts';
export * from './caption.ts';
export * from './grounding.ts';
export * from './harness.ts';
