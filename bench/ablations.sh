#!/usr/bin/env bash
# Ablations of issue 6 (sub-images, mixed encoders, weight mixing) on the demo recipe.
# Usage: bash bench/ablations.sh [--scale S] [--n N] [--only 1,2,3]   (takes long: run once, in the background)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/src/cli/demo.js ] || npx tsc -p tsconfig.json
exec node bench/ablations.mjs "$@"
