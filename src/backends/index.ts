// Backend selection. `useBackend('auto')` picks native when the addon loads, else reference
// (and says so once on stderr). CHIMERA_BACKEND=reference|native overrides 'auto'.

import { setBackend, type Backend } from '../engine/backend.ts';
import { referenceBackend } from './reference/index.ts';
import { createNativeBackend, nativeLoadError } from './native/index.ts';
import { defaultThreads } from './native/gemm.ts';

export type BackendName = 'auto' | 'native' | 'reference';

let native: Backend | null | undefined;
let warned = false;

/** The native backend, or null when the addon is not built or cannot load here. */
export function nativeBackend(): Backend | null {
  if (native === undefined) {
    native = createNativeBackend();
    // CHIMERA_THREADS overrides the default (all cores, at most 8).
    const env = Number(process.env['CHIMERA_THREADS']);
    native?.setThreads(Number.isInteger(env) && env > 0 ? env : defaultThreads());
  }
  return native ?? null;
}

export function useBackend(name: BackendName = 'auto'): Backend {
  const env = process.env['CHIMERA_BACKEND'];
  const want = name === 'auto' && (env === 'native' || env === 'reference') ? env : name;
  let b: Backend;
  if (want === 'reference') b = referenceBackend;
  else {
    const n = nativeBackend();
    if (n === null) {
      if (want === 'native') throw new Error(`native backend unavailable: ${nativeLoadError() ?? 'unknown error'}`);
      if (!warned) {
        warned = true;
        process.stderr.write(`chimera: native kernels unavailable (${nativeLoadError() ?? 'not built'}); using the slow reference backend\n`);
      }
      b = referenceBackend;
    } else b = n;
  }
  setBackend(b);
  return b;
}

export { referenceBackend };
