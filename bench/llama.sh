#!/usr/bin/env bash
# Chimera's LLaMA train step and KV-cache decode next to a plain PyTorch LLaMA, in one run:
#   bash bench/llama.sh [--steps N] [--tokens N] [--rounds R] [--threads N] [--config FILE]
# Config: bench/llama-bench.config.json (hidden 512, 8 layers, 8 heads / 4 kv heads,
# intermediate 1408, vocab 8192); train batch 4 x seq 256, decode 128 tokens from 1 token.
# Needs the built CLI (npm run build) and addon. Each round runs Chimera then PyTorch; with
# R > 1 the best round is kept for each (the machine may be shared). PYTHON picks the
# interpreter (default /usr/bin/python3, Debian's torch 1.13). Targets: train >= 1.0x, decode >= 1.2x.
set -euo pipefail
cd "$(dirname "$0")/.."

config=bench/llama-bench.config.json
steps=5
tokens=128
rounds=1
threads=2
batch=4
seq=256
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --tokens) tokens="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --config) config="$2"; shift 2 ;;
    *) echo "usage: bash bench/llama.sh [--steps N] [--tokens N] [--rounds R] [--threads N] [--config FILE]" >&2; exit 2 ;;
  esac
done

[ -f dist/src/cli/main.js ] || { echo "bench/llama.sh: dist/src/cli/main.js missing: run npm run build" >&2; exit 1; }
py="${PYTHON:-/usr/bin/python3}"
"$py" -c 'import torch' 2>/dev/null || { echo "bench/llama.sh: $py has no torch (apt-get install -y python3-torch)" >&2; exit 1; }

# The BLAS torch's matmuls go through (Debian's torch uses the libblas.so.3 alternative).
blas="$("$py" -c 'import torch, os
torch.ones(2, 2) @ torch.ones(2, 2)
print(",".join(sorted({os.path.basename(os.path.realpath(l.split()[-1])) for l in open("/proc/self/maps") if "blas" in l.lower()})))' 2>/dev/null || true)"
case "$blas" in
  *openblas*|*mkl*|*blis*) ;;
  *) echo "note: torch uses '${blas:-unknown}' (the reference BLAS?); apt-get install -y libopenblas0-pthread for a fair comparison" >&2 ;;
esac

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS="$threads" OMP_NUM_THREADS="$threads"
for r in $(seq 1 "$rounds"); do
  node dist/src/cli/main.js bench train-step --config "$config" --batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads" --json >>"$tmp/chimera.jsonl"
  "$py" bench/llama_torch.py train-step --config "$config" --batch "$batch" --seq "$seq" --steps "$steps" --threads "$threads" >>"$tmp/torch.jsonl"
  node dist/src/cli/main.js bench decode --config "$config" --tokens "$tokens" --threads "$threads" --json >>"$tmp/chimera.jsonl"
  "$py" bench/llama_torch.py decode --config "$config" --tokens "$tokens" --threads "$threads" >>"$tmp/torch.jsonl"
done

node - "$tmp/chimera.jsonl" "$tmp/torch.jsonl" "$blas" "$batch" "$seq" "$steps" "$tokens" <<'JS'
const fs = require('node:fs');
const [cf, tf, blas, batch, seq, steps, tokens] = process.argv.slice(2);
const read = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const best = (rows, bench) => rows.filter((r) => r.bench === bench).reduce((a, r) => (a === null || r.tokens_per_s > a.tokens_per_s ? r : a), null);
const c = read(cf), t = read(tf);
const ct = best(c, 'train-step'), tt = best(t, 'train-step'), cd = best(c, 'decode'), td = best(t, 'decode');
console.log(`Chimera (${ct.backend}, ${ct.threads} threads) vs PyTorch ${tt.torch} (${tt.threads} threads, BLAS ${blas || 'unknown'}); tokens/s`);
console.log('bench                                 chimera   pytorch     ratio  target');
const row = (name, a, b, target) => {
  const ratio = a.tokens_per_s / b.tokens_per_s;
  console.log(`${name.padEnd(34)}${a.tokens_per_s.toFixed(1).padStart(10)}${b.tokens_per_s.toFixed(1).padStart(10)}${ratio.toFixed(2).padStart(9)}x ${ratio >= target ? '>=' : '< '} ${target.toFixed(1)}x`);
};
row(`train-step ${batch}x${seq} (median of ${steps})`, ct, tt, 1.0);
row(`decode ${tokens} tokens (KV cache)`, cd, td, 1.2);
console.log(`wall:  ms/step chimera ${ct.step_ms.toFixed(1)}, pytorch ${tt.step_ms.toFixed(1)}; ms/token chimera ${cd.ms_per_token.toFixed(2)}, pytorch ${td.ms_per_token.toFixed(2)}`);
// CPU time of all threads: with --threads 1 it is close to the unloaded wall time on a shared machine.
console.log(`CPU:   ms/step chimera ${ct.step_cpu_ms.toFixed(1)}, pytorch ${tt.step_cpu_ms.toFixed(1)}; ms/token chimera ${cd.cpu_ms_per_token.toFixed(2)}, pytorch ${td.cpu_ms_per_token.toFixed(2)}`);
JS
