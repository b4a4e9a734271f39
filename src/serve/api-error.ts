// OpenAI-shaped errors: every non-2xx answer of the server is
// {"error": {"message", "type", "param", "code"}} with the HTTP status below.
//   400 invalid_request_error  bad JSON, bad field, over a request limit (code names the limit)
//   401 authentication_error   missing or wrong API key
//   404 not_found_error        unknown route or model
//   405 invalid_request_error  wrong method
//   408 timeout_error          request body not received in time / generation over its deadline
//   413 invalid_request_error  body over --max-body-bytes
//   429 rate_limit_error       queue full (Retry-After set)
//   503 unavailable_error      model loading or server draining
//   500 server_error           a bug; the message is generic (no stack, no paths)

export type ApiErrorType =
  | 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'timeout_error'
  | 'rate_limit_error' | 'unavailable_error' | 'server_error';

export class ApiError extends Error {
  readonly status: number;
  readonly type: ApiErrorType;
  readonly param: string | null;
  readonly code: string | null;
  constructor(status: number, type: ApiErrorType, message: string, param: string | null = null, code: string | null = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, 'invalid_request_error', message, param, code);

/** OpenAI's wording, which clients match on. */
export function contextLengthError(limit: number, promptTokens: number, completionTokens: number): ApiError {
  return badRequest(
    `This model's maximum context length is ${limit} tokens. However, you requested ${promptTokens + completionTokens} tokens ` +
      `(${promptTokens} in the messages, ${completionTokens} in the completion). Please reduce the length of the messages or completion.`,
    'messages', 'context_length_exceeded');
}

/** Any thrown value as an ApiError; unknown errors become a generic 500 (details go to the log only). */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(500, 'server_error', 'internal server error');
}
