#!/usr/bin/env bash
# The built-in default job: generated token data, a freshly initialised tiny RAT+ model
# (configs/tiny.yaml), and its loss under dense, dilated, local and hybrid attention patterns.
# Everything goes to runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
bin=build/ratplus
out=runs/quickstart
mkdir -p "$out"
"$bin" data synth --out "$out/val.bin" --tokens 100000 --vocab 256 --seed 2
"$bin" init --config configs/tiny.yaml --out "$out/init.h5"
"$bin" eval --checkpoint "$out/init.h5" --data "$out/val.bin" --seq-len 128 --batches 32 --eos-id 0 \
  --pattern dense --pattern dilated:D=16 --pattern dilated:D=16,W=16,P=4 --pattern local:W=32 \
  --pattern 'layers=dense|dilated:D=16' --pattern 'heads=2:dense+2:dilated:D=64' --json "$out/eval.json"
echo "quickstart: results in $out/eval.json"
