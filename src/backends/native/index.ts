// The native backend: the C++ addon's GEMM (gemm.ts) and kernels (kernels.ts) behind the
// Backend contract. Returns null when the addon is not built or cannot load; loadAddon().error
// says why.

import type { Backend } from '../../engine/backend.ts';
import { loadAddon } from './addon.ts';
import type { NativeCoreAddon } from './addon.ts';
import { nativeGemm, setNativeThreads } from './gemm.ts';
import { nativeKernels } from './kernels.ts';
import type { NativeKernelAddon } from './kernels.ts';

export type NativeAddon = NativeCoreAddon & NativeKernelAddon;

/** The loaded addon with its kernel functions, or null (not built, failed to load, or too old a build). */
export function nativeAddon(): NativeAddon | null {
  const { addon } = loadAddon();
  if (addon === null) return null;
  const full = addon as NativeAddon;
  return typeof full.unary === 'function' && typeof full.attention === 'function' ? full : null;
}

export function createNativeBackend(): Backend | null {
  const addon = nativeAddon();
  if (addon === null) return null;
  return {
    name: 'native',
    setThreads(n: number): void {
      setNativeThreads(addon, n);
    },
    getThreads(): number {
      return addon.getThreads();
    },
    gemm: nativeGemm(addon),
    ...nativeKernels(addon),
  };
}

/** Why the native backend is unavailable, or null when it loads. */
export function nativeLoadError(): string | null {
  const { addon, error } = loadAddon();
  if (addon === null) return error?.message ?? 'native addon not built';
  if (nativeAddon() === null) return 'the native addon lacks the kernel functions (rebuild it: node scripts/build-native.mjs)';
  return null;
}
