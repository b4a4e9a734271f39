// `chimera init --preset NAME --out DIR [--seed S] [--config-only] [--force] [--json]`: a randomly
// initialised model folder of a preset (NAME or NAME:tiny) that forward, train, chat and serve load.

import { CliError, intFlag, parseArgs, strFlag } from './args.ts';
import { createPreset } from '../models/vlm/create.ts';
import { presetNames } from '../models/vlm/systems.ts';

export async function init(argv: string[]): Promise<void> {
  const a = parseArgs(argv, ['preset', 'out', 'seed'], ['config-only', 'force', 'json']);
  const preset = strFlag(a, 'preset', '');
  const out = strFlag(a, 'out', '');
  if (preset === '') throw new CliError(`--preset is required (one of ${presetNames().join(', ')}; add ':tiny' for the test-size variant)`);
  if (out === '') throw new CliError('--out is required');
  if (a.positionals.length > 0) throw new CliError(`unexpected argument '${a.positionals[0]}'`);
  const seed = intFlag(a, 'seed', 0, 0, 2 ** 32 - 1);
  let res;
  try {
    res = createPreset(preset, out, { seed, configOnly: a.flags.has('config-only'), force: a.flags.has('force') });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (msg.startsWith('unknown preset') || msg.includes('pass --force')) throw new CliError(msg);
    throw e;
  }
  if (a.flags.has('json')) process.stdout.write(`${JSON.stringify({ preset: res.preset, out: res.dir, parameters: res.parameters, bytes: res.bytes })}\n`);
  else process.stdout.write(`wrote ${res.dir}: preset ${res.preset}, ${res.parameters.toLocaleString('en-US')} parameters\n`);
}
