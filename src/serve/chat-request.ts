// Validation of an OpenAI `POST /v1/chat/completions` body into a model-neutral request.
// Every numeric field is range-checked; every refusal is a 400 naming the field (param) and,
// for limits, the limit. Unknown top-level fields are ignored, as OpenAI does.

import type { ChatPart, ChatTurn, Detail } from '../models/chat-model.ts';
import { badRequest } from './api-error.ts';

export interface ImageRef {
  url: string;
  detail: Detail;
  /** Request field it came from, e.g. messages[0].content[1].image_url. */
  param: string;
}

export interface SamplingRequest {
  /** null: the model's default (bounded by the context left). */
  maxTokens: number | null;
  temperature: number | null;
  topP: number | null;
  seed: number | null;
  stop: string[];
}

export interface ChatRequest extends SamplingRequest {
  model: string | null;
  turns: ChatTurn[];
  /** In order of appearance; ChatPart {type:'image', image: i} refers to imageRefs[i]. */
  imageRefs: ImageRef[];
  stream: boolean;
  includeUsage: boolean;
}

export interface RequestLimits {
  /** Images per request. */
  maxImages: number;
  /** Largest max_tokens accepted. */
  maxTokens: number;
  /** Messages per request. */
  maxMessages: number;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const has = (o: Record<string, unknown>, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k) && o[k] !== undefined && o[k] !== null;

function num(o: Record<string, unknown>, k: string, lo: number, hi: number): number | null {
  if (!has(o, k)) return null;
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw badRequest(`'${k}' must be a number in [${lo}, ${hi}], got ${JSON.stringify(v)}`, k);
  return v;
}

function int(o: Record<string, unknown>, k: string, lo: number, hi: number): number | null {
  if (!has(o, k)) return null;
  const v = o[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw badRequest(`'${k}' must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v)}`, k);
  return v;
}

function bool(o: Record<string, unknown>, k: string): boolean {
  if (!has(o, k)) return false;
  if (typeof o[k] !== 'boolean') throw badRequest(`'${k}' must be a boolean, got ${JSON.stringify(o[k])}`, k);
  return o[k] as boolean;
}

function detailOf(v: unknown, param: string): Detail {
  if (v === undefined || v === null || v === 'auto' || v === 'high') return 'high';
  if (v === 'low') return 'low';
  throw badRequest(`'detail' must be 'low', 'high' or 'auto', got ${JSON.stringify(v)}`, param);
}

function parseContent(role: string, content: unknown, i: number, imageRefs: ImageRef[]): string | ChatPart[] {
  const param = `messages[${i}].content`;
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) {
    if (role === 'assistant') return '';
    throw badRequest(`${param} is required for role '${role}'`, param);
  }
  if (!Array.isArray(content)) throw badRequest(`${param} must be a string or an array of content parts`, param);
  const parts: ChatPart[] = [];
  content.forEach((p: unknown, j) => {
    const pp = `${param}[${j}]`;
    if (!isObj(p)) throw badRequest(`${pp} must be an object`, pp);
    if (p['type'] === 'text') {
      if (typeof p['text'] !== 'string') throw badRequest(`${pp}.text must be a string`, `${pp}.text`);
      parts.push({ type: 'text', text: p['text'] });
    } else if (p['type'] === 'image_url') {
      if (role !== 'user') throw badRequest(`${pp}: images are only accepted in user messages`, pp);
      const iu = p['image_url'];
      const url = typeof iu === 'string' ? iu : isObj(iu) ? iu['url'] : undefined;
      if (typeof url !== 'string' || url === '') throw badRequest(`${pp}.image_url.url must be a non-empty string`, `${pp}.image_url.url`, 'invalid_image_url');
      const detail = detailOf(isObj(iu) ? iu['detail'] : undefined, `${pp}.image_url.detail`);
      parts.push({ type: 'image', image: imageRefs.length });
      imageRefs.push({ url, detail, param: `${pp}.image_url` });
    } else {
      throw badRequest(`${pp}.type ${JSON.stringify(p['type'])} is not supported (use 'text' or 'image_url')`, `${pp}.type`);
    }
  });
  return parts;
}

/** Validates a parsed JSON body; throws ApiError 400 naming the field. */
export function parseChatRequest(body: unknown, limits: RequestLimits): ChatRequest {
  if (!isObj(body)) throw badRequest('request body must be a JSON object');
  const model = has(body, 'model') ? body['model'] : null;
  if (model !== null && typeof model !== 'string') throw badRequest("'model' must be a string", 'model');
  const msgs = body['messages'];
  if (!Array.isArray(msgs) || msgs.length === 0) throw badRequest("'messages' must be a non-empty array", 'messages');
  if (msgs.length > limits.maxMessages) throw badRequest(`'messages' has ${msgs.length} entries, over the limit max_messages=${limits.maxMessages}`, 'messages', 'too_many_messages');
  const imageRefs: ImageRef[] = [];
  const turns: ChatTurn[] = msgs.map((m: unknown, i): ChatTurn => {
    if (!isObj(m)) throw badRequest(`messages[${i}] must be an object`, `messages[${i}]`);
    const r = m['role'];
    const role = r === 'developer' ? 'system' : r;
    if (role !== 'system' && role !== 'user' && role !== 'assistant') {
      throw badRequest(`messages[${i}].role ${JSON.stringify(r)} is not supported (use system, developer, user or assistant)`, `messages[${i}].role`);
    }
    return { role, content: parseContent(role, m['content'], i, imageRefs) };
  });
  if (imageRefs.length > limits.maxImages) {
    throw badRequest(`the request carries ${imageRefs.length} images, over the limit max_images=${limits.maxImages}`, 'messages', 'too_many_images');
  }
  if (has(body, 'n') && body['n'] !== 1) throw badRequest(`only n=1 is supported, got ${JSON.stringify(body['n'])}`, 'n');
  if (body['logprobs'] === true) throw badRequest('logprobs are not supported by this server', 'logprobs');
  if (has(body, 'top_logprobs')) throw badRequest('top_logprobs is not supported by this server', 'top_logprobs');
  for (const k of ['tools', 'functions'] as const) {
    if (Array.isArray(body[k]) && (body[k] as unknown[]).length > 0) throw badRequest(`'${k}' is not supported by this server`, k);
  }
  for (const k of ['presence_penalty', 'frequency_penalty'] as const) {
    const v = num(body, k, -2, 2);
    if (v !== null && v !== 0) throw badRequest(`'${k}' is not supported by this server (only 0)`, k);
  }
  const rf = body['response_format'];
  if (isObj(rf) && rf['type'] !== 'text') throw badRequest(`response_format ${JSON.stringify(rf['type'])} is not supported (only 'text')`, 'response_format');
  const mt = int(body, 'max_tokens', 1, Number.MAX_SAFE_INTEGER);
  const mct = int(body, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER);
  const maxTokens = mct ?? mt;
  const which = mct !== null ? 'max_completion_tokens' : 'max_tokens';
  if (maxTokens !== null && maxTokens > limits.maxTokens) throw badRequest(`'${which}' is ${maxTokens}, over the limit max_tokens=${limits.maxTokens}`, which, 'max_tokens_too_large');
  let stop: string[] = [];
  if (has(body, 'stop')) {
    const s = body['stop'];
    stop = typeof s === 'string' ? [s] : Array.isArray(s) ? s : [];
    if (!(typeof s === 'string' || Array.isArray(s)) || stop.length > 4 || stop.some((x) => typeof x !== 'string' || x === '' || x.length > 256)) {
      throw badRequest("'stop' must be a non-empty string or an array of at most 4 non-empty strings (each at most 256 characters)", 'stop');
    }
  }
  const so = body['stream_options'];
  if (has(body, 'stream_options') && !isObj(so)) throw badRequest("'stream_options' must be an object", 'stream_options');
  return {
    model: model as string | null, turns, imageRefs,
    stream: bool(body, 'stream'),
    includeUsage: isObj(so) ? bool(so, 'include_usage') : false,
    maxTokens,
    temperature: num(body, 'temperature', 0, 2),
    topP: num(body, 'top_p', Number.MIN_VALUE, 1),
    seed: int(body, 'seed', -(2 ** 53) + 1, 2 ** 53 - 1),
    stop,
  };
}
