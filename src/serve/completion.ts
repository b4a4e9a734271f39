// One chat completion against a ChatModel: prepare (template + images) -> generate (streaming,
// stop tokens/strings, abort) -> result with OpenAI-style usage and timings. Shared by
// `chimera run`, `chimera chat` and the server.

import type { ChatImage, ChatModel, ChatTurn } from '../models/chat-model.ts';
import { contextLengthError, badRequest } from './api-error.ts';
import { generate, type FinishReason } from './generate.ts';
import type { SamplingRequest } from './chat-request.ts';

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface CompletionTimings {
  prepare_ms: number;
  prefill_ms: number;
  decode_ms: number;
  decode_tokens_per_second: number;
}

export interface CompletionResult {
  text: string;
  finishReason: FinishReason;
  usage: CompletionUsage;
  timings: CompletionTimings;
}

export interface CompletionHooks {
  /** Streamed text, in order; the deltas concatenate to the final text. */
  onDelta?: (text: string) => void;
  /** Called once the prompt is prepared, with its token count (before any generation). */
  onPrepared?: (promptTokens: number) => void;
  signal?: AbortSignal;
}

/**
 * Runs one completion. Throws ApiError 400 when the conversation does not fit (prompt or
 * prompt + max_tokens over the context, with OpenAI's context_length_exceeded wording) or when
 * the model refuses it (e.g. images for a text-only model); a model error propagates.
 * An abort returns finishReason 'abort' with the text so far.
 */
export async function runCompletion(model: ChatModel, turns: readonly ChatTurn[], images: readonly ChatImage[], s: SamplingRequest, hooks: CompletionHooks = {}): Promise<CompletionResult> {
  const t0 = performance.now();
  let prepared;
  try {
    prepared = model.prepare(turns, images);
  } catch (e) {
    const m = (e as Error).message;
    const over = /(\d+) tokens exceeds the context length (\d+)/.exec(m);
    if (over) throw contextLengthError(Number(over[2]), Number(over[1]), s.maxTokens ?? 0);
    throw badRequest(m, 'messages', /context/i.test(m) ? 'context_length_exceeded' : null);
  }
  try {
    const prepareMs = performance.now() - t0;
    const limit = Math.min(model.maxPositions, prepared.lm.maxPositions);
    const n = prepared.ids.length;
    if (s.maxTokens !== null && n + s.maxTokens > limit) throw contextLengthError(limit, n, s.maxTokens);
    const budget = s.maxTokens ?? Math.min(model.defaults.maxNewTokens, limit - n);
    if (budget < 1) throw contextLengthError(limit, n, 1);
    hooks.onPrepared?.(n);
    const temperature = s.temperature ?? model.defaults.temperature;
    const tok = model.tokenizer;
    const [r] = await generate(prepared.lm, [prepared.ids], {
      maxNewTokens: budget,
      temperature,
      topP: s.topP ?? model.defaults.topP,
      seed: (s.seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0,
      stopTokenIds: model.stopTokenIds,
      stopStrings: [...model.stopStrings, ...s.stop],
      decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }).replace(/^\s+/, ''), // templates end the prompt at "Assistant:"; the reply's leading space is not content
      ...(hooks.onDelta ? { onToken: (_row: number, _id: number, d: string) => { if (d !== '') hooks.onDelta!(d); } } : {}),
      ...(hooks.signal ? { signal: hooks.signal } : {}),
    });
    const res = r!;
    return {
      text: res.text ?? '',
      finishReason: res.finishReason,
      usage: { prompt_tokens: res.usage.promptTokens, completion_tokens: res.usage.completionTokens, total_tokens: res.usage.totalTokens },
      timings: {
        prepare_ms: round(prepareMs), prefill_ms: round(res.timings.prefillMs), decode_ms: round(res.timings.decodeMs),
        decode_tokens_per_second: round(res.timings.decodeTokensPerSecond),
      },
    };
  } finally {
    prepared.dispose();
  }
}

const round = (x: number): number => Math.round(x * 100) / 100;
