#!/usr/bin/env bash
# GPU memory of an evaluation: a freshly initialised checkpoint of a config (default the 7.6B RAT+), evaluated
# in bf16 on generated tokens, while nvidia-smi samples the GPU's memory every 100 ms. Prints the memory plan
# eval logs, the loss, and the largest memory in use on the GPU during the run (CUDA context included).
# Checkpoint and tokens go to $CKPT (default /dev/shm/ratplus-eval-memory, deleted afterwards); the report to
# $OUT/eval-memory.txt (or ./bench-out). Expects build-gpu/ (tests/gpu/run.sh) and .devdeps/ carried along.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
config=${CONFIG:-configs/ratplus-7.6b.yaml}
seq_len=${SEQ_LEN:-4096}
dir=${CKPT:-/dev/shm/ratplus-eval-memory}
mkdir -p "$out" "$dir"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
[[ -x build-gpu/ratplus ]] || bash tests/gpu/run.sh >"$out/build.log" 2>&1
report=$out/eval-memory.txt
{
  echo "== $(date -u '+%Y-%m-%d %H:%M UTC') $config, bf16, one window of $seq_len tokens"
  start=$SECONDS
  build-gpu/ratplus init --config "$config" --out "$dir/model.h5" 2>&1 | tail -1
  echo "init: $((SECONDS - start)) s"
  build-gpu/ratplus data synth --out "$dir/tokens.bin" --tokens $((2 * seq_len)) --vocab 32000 2>&1 | tail -1
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$dir/samples.txt" &
  sampler=$!
  start=$SECONDS
  build-gpu/ratplus eval --checkpoint "$dir/model.h5" --data "$dir/tokens.bin" --seq-len "$seq_len" --batches 1 \
    --pattern dense --pattern dilated:D=64 --device cuda --precision bf16 2>&1
  echo "eval: exit $?, $((SECONDS - start)) s"
  kill "$sampler"
  echo "largest GPU memory in use during the run: $(sort -n "$dir/samples.txt" | tail -1) MiB"
} 2>&1 | tee -a "$report"
rm -rf "$dir"
