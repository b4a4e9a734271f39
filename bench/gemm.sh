#!/usr/bin/env bash
# Chimera's native sgemm next to numpy/OpenBLAS on the same machine, in one run:
#   bash bench/gemm.sh [--seconds S] [--rounds R]
# Needs the built CLI (npm run build) and addon. Each round measures every shape/thread pair with
# Chimera and numpy back to back, in alternating order (so both see the same machine load); the
# best mean over the R rounds (default 5) is kept for each side.
# PYTHON picks the interpreter; otherwise the first of /usr/bin/python3 and python3 whose numpy
# uses OpenBLAS (Debian's numpy does once libopenblas0-pthread is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=0.5
rounds=5
shapes=1024x1024x1024,512x3072x768,1x4096x4096
threads="1 2"
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: bash bench/gemm.sh [--seconds S] [--rounds R]" >&2; exit 2 ;;
  esac
done

[ -f dist/src/cli/main.js ] || { echo "bench/gemm.sh: dist/src/cli/main.js missing: run npm run build" >&2; exit 1; }

blas_of() { # prints the BLAS library numpy loads under interpreter $1, or nothing
  "$1" -c 'import numpy as np, os
np.ones((2, 2), np.float32) @ np.ones((2, 2), np.float32)
print(",".join(sorted({os.path.basename(l.split()[-1]) for l in open("/proc/self/maps") if "blas" in l.lower()})))' 2>/dev/null || true
}

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for cand in /usr/bin/python3 python3; do
    command -v "$cand" >/dev/null 2>&1 || continue
    if blas_of "$cand" | grep -qi openblas; then py="$cand"; break; fi
  done
fi
if [ -z "$py" ]; then
  if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    py=/usr/bin/python3
    echo "note: no numpy with OpenBLAS found; numpy uses $(blas_of "$py") (apt-get install -y libopenblas0-pthread for OpenBLAS)" >&2
  else
    echo "bench/gemm.sh: numpy missing (apt-get install -y python3-numpy)" >&2
    exit 1
  fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
  for shape in ${shapes//,/ }; do
    for t in $threads; do
      run_chimera() { node dist/src/cli/main.js bench gemm --json --seconds "$seconds" --shapes "$shape" --threads "$t" >>"$tmp/chimera.jsonl"; }
      run_numpy() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" bench/gemm_numpy.py --seconds "$seconds" --shapes "$shape" --threads "$t" >>"$tmp/numpy.jsonl"; }
      # alternate who goes first, so neither side always follows the other's warm-up or spin-down
      if [ $((r % 2)) -eq 1 ]; then run_chimera; run_numpy; else run_numpy; run_chimera; fi
    done
  done
done

node - "$tmp/chimera.jsonl" "$tmp/numpy.jsonl" "$py" <<'JS'
const fs = require('node:fs');
const [cf, nf, py] = process.argv.slice(2);
const read = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const best = (rows) => {
  const m = new Map();
  for (const r of rows) {
    const key = `${r.m}x${r.n}x${r.k}/${r.threads}`;
    if (!m.has(key) || m.get(key).gflops < r.gflops) m.set(key, r);
  }
  return m;
};
const c = best(read(cf)), n = best(read(nf));
const any = [...n.values()][0];
console.log(`Chimera native (${[...c.values()][0]?.isa}) vs numpy ${any?.numpy} (${any?.blas}, ${py})`);
console.log('GFLOP/s: mean over each timed window, best of the rounds');
console.log('shape (MxNxK)       threads   chimera     numpy     ratio');
for (const [key, r] of c) {
  const o = n.get(key);
  const ratio = o ? (r.gflops / o.gflops).toFixed(2) : '-';
  console.log(`${`${r.m}x${r.n}x${r.k}`.padEnd(20)}${String(r.threads).padStart(7)}${r.gflops.toFixed(1).padStart(10)}${(o ? o.gflops.toFixed(1) : '-').padStart(10)}${ratio.padStart(10)}`);
}
JS
