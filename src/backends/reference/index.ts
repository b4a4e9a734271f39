// The reference backend: plain scalar loops with f64 accumulation. It defines every kernel's
// semantics; other backends are tested against it.

import type { Backend } from '../../engine/backend.ts';
import { attention, attentionBackward } from './attention.ts';
import { col2im, depthwiseConv2d, depthwiseConv2dBackward, im2col } from './conv.ts';
import { copyStrided } from './copy.ts';
import { binary, unary, unaryBackward, where } from './elementwise.ts';
import { gemm } from './gemm.ts';
import { gather, indexAdd, indexSelect, scatterAdd } from './indexing.ts';
import { interpolate, interpolateBackward } from './interpolate.ts';
import { crossEntropy, crossEntropyBackward } from './loss.ts';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from './norm.ts';
import { adamw, sgd } from './optim.ts';
import { pool2d, pool2dBackward } from './pool.ts';
import { argReduce, reduce, sumSquares } from './reduce.ts';
import { rope } from './rope.ts';
import { cumsum, topk } from './scan.ts';
import { softmax, softmaxBackward } from './softmax.ts';

export const referenceBackend: Backend = {
  name: 'reference',
  setThreads(_n: number): void {},
  getThreads(): number {
    return 1;
  },
  gemm,
  copyStrided,
  unary,
  unaryBackward,
  binary,
  where,
  reduce,
  argReduce,
  sumSquares,
  softmax,
  softmaxBackward,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  rope,
  attention,
  attentionBackward,
  im2col,
  col2im,
  depthwiseConv2d,
  depthwiseConv2dBackward,
  pool2d,
  pool2dBackward,
  interpolate,
  interpolateBackward,
  indexSelect,
  indexAdd,
  gather,
  scatterAdd,
  crossEntropy,
  crossEntropyBackward,
  cumsum,
  topk,
  adamw,
  sgd,
};
