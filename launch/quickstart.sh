#!/usr/bin/env bash
# The built-in default job: generated token data with learnable structure, a tiny RAT+ model
# (configs/tiny.yaml) trained with the joint objective (dilated(16) pass + dense pass per batch) on the
# CPU or GPU, then its loss under dense, dilated, local and hybrid patterns next to the untrained model's.
# Everything goes to runs/tiny/. Running it again continues from the last checkpoint (already finished:
# nothing to do) — delete runs/tiny to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
bin=build/ratplus
out=runs/tiny
mkdir -p "$out"
[[ -f $out/train.bin ]] || "$bin" data synth --out "$out/train.bin" --tokens 2000000 --vocab 256 --seed 1
[[ -f $out/val.bin ]] || "$bin" data synth --out "$out/val.bin" --tokens 100000 --vocab 256 --seed 2
"$bin" init --config configs/tiny.yaml --out "$out/untrained.h5"
"$bin" train --config configs/tiny.yaml
latest=$(ls "$out"/checkpoints/step_*.h5 | sort | tail -n 1)
patterns=(--pattern dense --pattern dilated:D=16 --pattern dilated:D=16,W=16,P=4 --pattern local:W=32
  --pattern 'layers=dense|dilated:D=16' --pattern 'heads=2:dense+2:dilated:D=64')
echo "== untrained model"
"$bin" eval --checkpoint "$out/untrained.h5" --data "$out/val.bin" --seq-len 128 --batches 32 --eos-id 0 "${patterns[@]}"
echo "== trained model ($latest)"
"$bin" eval --checkpoint "$latest" --data "$out/val.bin" --seq-len 128 --batches 32 --eos-id 0 "${patterns[@]}" \
  --json "$out/eval.json"
echo "quickstart: results in $out/eval.json, training log in $out/metrics.jsonl"
