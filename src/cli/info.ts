import { useBackend } from '../backends/index.ts';
import { parseArgs } from './args.ts';

export async function info(argv: string[]): Promise<void> {
  const p = parseArgs(argv, [], ['json']);
  const b = useBackend('auto');
  const isa = (b as { isa?: () => string }).isa?.() ?? 'n/a';
  const out = { backend: b.name, isa, threads: b.getThreads(), node: process.version };
  process.stdout.write(p.flags.has('json') ? JSON.stringify(out) + '\n' : Object.entries(out).map(([k, v]) => `${k}: ${v}`).join('\n') + '\n');
}
