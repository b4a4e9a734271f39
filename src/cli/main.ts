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
    summary: 'the main job: pre-train the encoders and a tiny SPHINX from nothing (or load it), evaluate, answer about sample images',
    usage: 'chimera demo [--out DIR (default ./chimera-demo or $CHIMERA_DEMO_DIR)] [--steps-scale X] [--seed S] [--eval-n N] [--retrain] [--backend auto|native|reference] [--json]',
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
    usage: 'chimera init --preset NAME[:tiny] --out DIR [--seed S] [--config-only] [--force] [--json]',
    run: async (a) => (await import('./init.ts')).init(a),
  },
  data: {
    summary: 'datasets: make-corpus (built-in corpus) | coreset (SVIT-style) | check (validate)',
    usage: 'chimera data make-corpus --out DIR --domain real|synthetic|both --n N [--seed S] [--split train|val|test] [--size PX] [--small-objects] [--tasks a,b] [--vqa-kinds a,b] [--name NAME] [--json] | chimera data coreset --data FILE --out FILE --size N [--json] | chimera data check --data FILE [--root DIR] [--skip-invalid] [--json]',
    run: async (a) => (await import('./data.ts')).dataCommand(a),
  },
  eval: {
    summary: 'score a model (or a predictions file) on vqa | rec | pope | mme | caption',
    usage: 'chimera eval --model DIR --data FILE --task vqa|rec|pope|mme|caption [--limit N] [--max-tokens N] [--root DIR] [--out FILE] [--json] | chimera eval --predictions FILE --task ... [--limit N] [--json]',
    run: async (a) => (await import('./eval.ts')).evalCommand(a),
  },
  train: {
    summary: 'staged training of a multimodal model: checkpoints, --resume, metrics JSONL, loss-curve SVG',
    usage: 'chimera train --config FILE | --preset NAME[:tiny] | --model DIR --out DIR [--data FILE] [--root DIR] [--resume] [--steps N] [--stop-after N] [--recipe NAME] [--batch B] [--grad-accum K] [--lr X] [--seed S] [--backend auto|native|reference] [--json]',
    run: async (a) => (await import('./train.ts')).train(a),
  },
  'pretrain-encoder': {
    summary: 'pre-train a tiny visual encoder on the built-in corpus with its own paradigm',
    usage: 'chimera pretrain-encoder --kind clip|dino|supervised|qformer --out DIR [--steps N] [--seed S] [--batch B] [--lr LR] [--config FILE] [--vision DIR] [--data auto|subset|full] [--backend auto|native|reference] [--json]',
    run: async (a) => (await import('./pretrain-encoder.ts')).pretrainEncoder(a),
  },
  mix: {
    summary: 'weight mixing: theta = B*theta_a + (1-B)*theta_b, or --search B over a validation set',
    usage: 'chimera mix --a DIR_A --b DIR_B --beta B --out DIR_C [--only REGEX] [--json] | chimera mix --a DIR_A --b DIR_B --out DIR_C --search 0,0.25,0.5,0.75,1 --data VAL --task vqa|rec|pope|mme|caption [--limit N] [--max-tokens N] [--root DIR]',
    run: async (a) => (await import('./mix.ts')).mixCommand(a),
  },
  run: {
    summary: 'one answer from a chat model, streamed (images with --image)',
    usage: 'chimera run --model DIR [--image PATH ...] [--detail low|high] [--system TEXT] [--temperature T] [--top-p P] [--max-tokens N] [--seed S] [--backend auto|native|reference] [--json] "question"',
    run: async (a) => (await import('./run.ts')).run(a),
  },
  chat: {
    summary: 'interactive multi-turn chat on stdin/stdout (/image PATH, /reset, /quit)',
    usage: 'chimera chat --model DIR [--image PATH ...] [--detail low|high] [--system TEXT] [--temperature T] [--top-p P] [--max-tokens N] [--seed S] [--backend auto|native|reference] [--json]',
    run: async (a) => (await import('./chat.ts')).chat(a),
  },
  serve: {
    summary: 'OpenAI-compatible chat server with images, and the web playground',
    usage: 'chimera serve --model DIR [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--allow-files DIR] [--allow-remote] [--concurrency N] [--max-queue N] [--max-body-bytes N] [--max-images N] [--max-image-bytes N] [--max-image-pixels N] [--max-tokens N] [--request-timeout S] [--remote-timeout S] [--shutdown-timeout S] [--backend auto|native|reference] [--json]',
    run: async (a) => (await import('./serve.ts')).serve(a),
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
