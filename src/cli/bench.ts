// `chimera bench <what>`: measurements, never timed tests. Each prints JSON lines with --json.

import { CliError } from './args.ts';

export async function bench(argv: string[]): Promise<void> {
  const [what, ...rest] = argv;
  switch (what) {
    case 'gemm': return (await import('./bench-gemm.ts')).benchGemm(rest);
    case 'ops': return (await import('./bench-ops.ts')).benchOps(rest);
    case 'train-step': return (await import('./bench-train.ts')).benchTrainStep(rest);
    case 'decode': return (await import('./bench-train.ts')).benchDecode(rest);
    default: throw new CliError(`unknown benchmark '${what ?? ''}' (gemm | ops | train-step | decode)`);
  }
}
