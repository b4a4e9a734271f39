export * from './generate.ts';
export { checkSampling, applyRepetitionPenalty, candidateDistribution, sampleToken, nextToken, type SamplingOptions, type Candidates } from './sampling.ts';
