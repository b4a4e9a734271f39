// A small flag parser: --name value, --name=value, boolean --flag; positionals kept in order.

export class CliError extends Error {}

export interface Parsed {
  flags: Map<string, string | true>;
  positionals: string[];
}

/** Parses argv against the known flags; `booleans` take no value. Unknown flags are errors. */
export function parseArgs(argv: readonly string[], known: readonly string[], booleans: readonly string[] = []): Parsed {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) { positionals.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (!known.includes(name) && !booleans.includes(name)) throw new CliError(`unknown option --${name}`);
    if (booleans.includes(name)) {
      if (eq >= 0) throw new CliError(`--${name} takes no value`);
      flags.set(name, true);
    } else if (eq >= 0) flags.set(name, a.slice(eq + 1));
    else {
      const v = argv[++i];
      if (v === undefined) throw new CliError(`--${name} needs a value`);
      flags.set(name, v);
    }
  }
  return { flags, positionals };
}

export function intFlag(p: Parsed, name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = p.flags.get(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (v === true || !Number.isInteger(n) || n < min || n > max) throw new CliError(`--${name} must be an integer in [${min}, ${max}], got '${v}'`);
  return n;
}

export function strFlag(p: Parsed, name: string, def: string, allowed?: readonly string[]): string {
  const v = p.flags.get(name);
  if (v === undefined) return def;
  if (v === true) throw new CliError(`--${name} needs a value`);
  if (allowed && !allowed.includes(v)) throw new CliError(`--${name} must be one of ${allowed.join('|')}, got '${v}'`);
  return v;
}
