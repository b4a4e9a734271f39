// Chat templates: Jinja strings (as in tokenizer_config.json "chat_template") rendered with
// @huggingface/jinja, with the variables transformers passes: messages, add_generation_prompt,
// bos_token, eos_token, plus any extras (tools, documents, ...). Errors are
// `Error("chat template (<name>): parse|render error: ...")`; raise_exception() messages land in
// the render error. A rendered prompt usually contains bos_token already: encode it with
// addSpecialTokens: false.

import { Template } from '@huggingface/jinja';
import type { Tokenizer } from './tokenizer.ts';

export interface ChatMessage {
  role: string;
  /** A string, or structured content (e.g. [{type: 'image'}, {type: 'text', text}]) for templates that expect it. */
  content: unknown;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** More template variables (tools, documents, date_string, ...). */
  extra?: Record<string, unknown>;
}

/** A parsed template, reusable across renders. */
export class ChatTemplate {
  readonly source: string;
  readonly name: string;
  private readonly template: Template;

  constructor(source: string, name = 'chat_template') {
    if (typeof source !== 'string') throw new Error(`chat template (${name}): expected a template string, got ${typeof source}`);
    this.source = source;
    this.name = name;
    try {
      this.template = new Template(source);
    } catch (e) {
      throw new Error(`chat template (${name}): parse error: ${(e as Error).message}`, { cause: e });
    }
  }

  render(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    checkMessages(messages, this.name);
    const vars: Record<string, unknown> = {
      ...options.extra,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: options.bosToken ?? '',
      eos_token: options.eosToken ?? '',
    };
    let out: unknown;
    try {
      out = this.template.render(vars);
    } catch (e) {
      throw new Error(`chat template (${this.name}): render error: ${(e as Error).message}`, { cause: e });
    }
    if (typeof out !== 'string') throw new Error(`chat template (${this.name}): render produced ${typeof out}, not a string`);
    return out;
  }
}

function checkMessages(messages: readonly ChatMessage[], name: string): void {
  if (!Array.isArray(messages)) throw new Error(`chat template (${name}): messages must be an array`);
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new Error(`chat template (${name}): messages[${i}] must be an object`);
    if (typeof m.role !== 'string') throw new Error(`chat template (${name}): messages[${i}].role must be a string`);
    if (m.content === undefined) throw new Error(`chat template (${name}): messages[${i}].content is missing`);
  });
}

const cache = new Map<string, ChatTemplate>();
const CACHE_LIMIT = 16;

/** Renders `template` (parsed once and cached) for `messages`. */
export function applyChatTemplate(template: string, messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  let t = cache.get(template);
  if (t === undefined) {
    t = new ChatTemplate(template);
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(template, t);
  }
  return t.render(messages, options);
}

/** Renders with the tokenizer's own chat template and bos/eos tokens (options override them). */
export function applyTokenizerChatTemplate(tokenizer: Tokenizer, messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  if (tokenizer.chatTemplate === null) throw new Error(`chat template: ${tokenizer.source} has no chat_template (pass one to applyChatTemplate)`);
  const opts: ChatTemplateOptions = { ...options };
  if (opts.bosToken === undefined && tokenizer.bosToken !== null) opts.bosToken = tokenizer.bosToken;
  if (opts.eosToken === undefined && tokenizer.eosToken !== null) opts.eosToken = tokenizer.eosToken;
  return applyChatTemplate(tokenizer.chatTemplate, messages, opts);
}

/**
 * Templates for Chimera's own models, written for this project in three common conventions:
 * LLaMA-2 chat ([INST] ... [/INST], <<SYS>> block in the first user turn), ChatML
 * (<|im_start|>role ... <|im_end|>) and Vicuna v1.1 (USER: ... ASSISTANT: ...</s>).
 */
export const builtinChatTemplates = {
  llama2:
    "{% if messages and messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set turns = messages[1:] %}" +
    '{% else %}{% set sys = none %}{% set turns = messages %}{% endif %}' +
    '{% for m in turns %}' +
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('llama2 template: roles must alternate user/assistant after an optional system message') }}{% endif %}" +
    "{% if m['role'] == 'user' %}" +
    "{% if loop.first and sys is not none %}{% set text = '<<SYS>>\\n' + sys + '\\n<</SYS>>\\n\\n' + m['content'] %}{% else %}{% set text = m['content'] %}{% endif %}" +
    "{{ bos_token + '[INST] ' + text | trim + ' [/INST]' }}" +
    "{% else %}{{ ' ' + m['content'] | trim + ' ' + eos_token }}{% endif %}" +
    '{% endfor %}',
  chatml:
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
  vicuna:
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + ' ' }}{% set turns = messages[1:] %}" +
    "{% else %}{{ 'A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user\\'s questions. ' }}{% set turns = messages %}{% endif %}" +
    "{% for m in turns %}{% if m['role'] == 'user' %}{{ 'USER: ' + m['content'] + ' ' }}" +
    "{% elif m['role'] == 'assistant' %}{{ 'ASSISTANT: ' + m['content'] + eos_token }}" +
    "{% else %}{{ raise_exception('vicuna template: unknown role ' + m['role']) }}{% endif %}{% endfor %}" +
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}",
} as const;
