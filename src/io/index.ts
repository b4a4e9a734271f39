export * from './safetensors.ts';
export * from './tokenizer.ts';
export * from './chat-template.ts';
export { trainByteLevelBpe, saveTokenizerFiles, type BpeTrainerOptions, type TrainedTokenizer } from './bpe-trainer.ts';
export { decodeImage, parseDataUrl, DEFAULT_IMAGE_LIMITS, DEFAULT_IMAGE_FORMATS, DEFAULT_IMAGE_MEDIA_TYPES, type DecodeOptions as ImageDecodeOptions, type DecodedImage, type ImageFormat, type ImageLimits, type DataUrlOptions } from './image.ts';
