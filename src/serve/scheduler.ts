// A bounded admission queue: at most `concurrency` jobs run at once, at most `maxQueue` wait
// (FIFO); one more is refused at once with 429 so the client can back off. A waiting job whose
// client goes away leaves the queue. Running generations interleave token by token (generate
// yields to the event loop between steps), so memory is bounded by concurrency x one KV cache.

import { ApiError } from './api-error.ts';

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (e: unknown) => void;
  onAbort: () => void;
  signal: AbortSignal | undefined;
}

export class Scheduler {
  private running = 0;
  private readonly queue: Waiter[] = [];
  private closed: ApiError | null = null;

  readonly concurrency: number;
  readonly maxQueue: number;

  constructor(concurrency: number, maxQueue: number) {
    this.concurrency = concurrency;
    this.maxQueue = maxQueue;
    if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new Error(`Scheduler: concurrency must be an integer >= 1, got ${concurrency}`);
    if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new Error(`Scheduler: maxQueue must be an integer >= 0, got ${maxQueue}`);
  }

  get active(): number {
    return this.running;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Resolves with a release function once a slot is free; throws ApiError 429 when the queue is full. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.closed) return Promise.reject(this.closed);
    if (signal?.aborted) return Promise.reject(new ApiError(499 as number, 'invalid_request_error', 'client closed the request'));
    if (this.running < this.concurrency) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(new ApiError(429, 'rate_limit_error',
        `server busy: ${this.running} requests running and ${this.queue.length} queued (max_queue=${this.maxQueue}); retry later`, null, 'queue_full'));
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        resolve, reject, signal,
        onAbort: () => {
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(new ApiError(499, 'invalid_request_error', 'client closed the request'));
        },
      };
      signal?.addEventListener('abort', w.onAbort, { once: true });
      this.queue.push(w);
    });
  }

  /** Refuses new work and fails every waiting job with `err`. */
  close(err: ApiError): void {
    this.closed = err;
    for (const w of this.queue.splice(0)) {
      w.signal?.removeEventListener('abort', w.onAbort);
      w.reject(err);
    }
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.queue.shift();
      if (next) {
        next.signal?.removeEventListener('abort', next.onAbort);
        next.resolve(this.releaser());
      } else this.running--;
    };
  }
}
