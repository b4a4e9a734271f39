// Loads the compiled addon (native/build/Release/chimera_native.node) if it was built. Never throws
// and never prints: callers decide how to report a missing addon.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's core and GEMM functions (kernel functions are typed in kernels.ts). */
export interface NativeCoreAddon {
  /** Threads used by parallel kernels, caller included (>= 1). */
  setThreads(n: number): void;
  getThreads(): number;
  /** The code path kernels take now: 'avx512' | 'avx2' | 'scalar'. */
  isa(): string;
  /** The best path this CPU supports. */
  cpuIsa(): string;
  /** Forces a path (tests); throws if the CPU lacks it. CHIMERA_ISA does the same at load. */
  setIsa(name: 'avx512' | 'avx2' | 'scalar'): void;
  /**
   * GemmArgs positionally: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]. Validates every size
   * and offset and throws Error('gemm: ...') instead of touching memory out of range.
   */
  gemm(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number, beta: number,
    a: Float32Array, aOff: number, lda: number, strideA: number,
    b: Float32Array, bOff: number, ldb: number, strideB: number,
    c: Float32Array, cOff: number, ldc: number, strideC: number,
    batch: number,
  ): void;
}

export interface AddonLoad {
  addon: NativeCoreAddon | null;
  /** Why it is null: not built, or failed to load (wrong platform, missing symbols...). */
  error: Error | null;
  /** Where it was looked for. */
  path: string;
}

/** The package root: the nearest ancestor of this file holding package.json (works from src/ and dist/src/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return dirname(fileURLToPath(import.meta.url));
    dir = up;
  }
}

let cached: AddonLoad | null = null;

/** Loads the addon once per process; CHIMERA_NATIVE_PATH overrides the location. */
export function loadAddon(): AddonLoad {
  if (cached !== null) return cached;
  const path = process.env.CHIMERA_NATIVE_PATH ?? join(packageRoot(), 'native', 'build', 'Release', 'chimera_native.node');
  if (!existsSync(path)) {
    cached = { addon: null, error: new Error(`native addon not built: ${path} is missing (run \`node scripts/build-native.mjs\`)`), path };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    cached = { addon: require(path) as NativeCoreAddon, error: null, path };
  } catch (e) {
    cached = { addon: null, error: e instanceof Error ? e : new Error(String(e)), path };
  }
  return cached;
}
