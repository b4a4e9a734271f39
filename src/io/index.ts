export * from './safetensors.ts';
export * from './tokenizer.ts';
export * from './chat-template.ts';
export { trainByteLevelBpe, saveTokenizerFiles, type BpeTrainerOptions, type TrainedTokenizer } from './bpe-trainer.ts';
