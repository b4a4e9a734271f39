#!/usr/bin/env node
// The `chimera` command: lazy dispatch to one module per subcommand. Every command answers
// --help, exits non-zero with a one-line reason on bad input, and takes --json where it prints data.

import { CliError } from './args.ts';

interface Command {
  summary: string;
  usage: string;
  run: (argv: string[]) => Promise<void>;
}

const commands: Record<string, Command> = {
  demo: {
    summary: 'the main job: train a tiny model from nothing and show what it learned',
    usage: 'chimera demo [--steps N] [--backend auto|native|reference] [--seed S] [--json]',
    run: async (a) => (await import('./demo.ts')).demo(a),
  },
  forward: {
    summary: 'one forward pass of a model folder on inputs from a safetensors file',
    usage: 'chimera forward --model DIR --inputs IN.safetensors --out OUT.safetensors [--backend auto|native|reference] [--json]',
    run: async (a) => (await import('./forward.ts')).forward(a),
  },
  bench: {
    summary: 'benchmarks: gemm | ops | train-step | decode',
    usage: 'chimera bench gemm [--json] | chimera bench ops [--json] | chimera bench train-step --config FILE --batch B --seq T --steps N [--json] | chimera bench decode --config FILE --tokens N [--json]',
    run: async (a) => (await import('./bench.ts')).bench(a),
  },
  plan: {
    summary: 'image positions and FLOPs per view for a preset and an image size',
    usage: 'chimera plan --preset NAME --image WxH [--detail low|high] [--json] [--svg FILE]',
    run: async (a) => (await import('./plan.ts')).planCommand(a),
  },
  init: {
    summary: 'a randomly initialised model folder of a preset (NAME or NAME:tiny)',
    usage: 'chimera init --preset NAME[:tiny] --out DIR [--seed S] [--config-only] [--json]',
    run: async (a) => (await import('./init.ts')).init(a),
  },
  info: {
    summary: 'backend, ISA and thread count in use',
    usage: 'chimera info [--json]',
    run: async (a) => (await import('./info.ts')).info(a),
  },
};

function help(): string {
  const rows = Object.entries(commands).map(([k, c]) => `  ${k.padEnd(10)} ${c.summary}`);
  return ['usage: chimera <command> [options]', '', 'commands:', ...rows, '', 'chimera <command> --help shows the options of one command.'].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name === undefined ? 1 : 0;
  }
  const cmd = commands[name];
  if (cmd === undefined) {
    process.stderr.write(`chimera: unknown command '${name}' (try chimera --help)\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`usage: ${cmd.usage}\n`);
    return 0;
  }
  try {
    await cmd.run(rest);
    return 0;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`chimera ${name}: ${msg.split('\n')[0]}\n`);
    if (process.env['CHIMERA_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return e instanceof CliError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
