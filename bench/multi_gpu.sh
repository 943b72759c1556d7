#!/usr/bin/env bash
# Multi-GPU training measurements on one node (2 or more GPUs), into $OUT (or ./bench-out), all with
# `ratplus bench train` on random tokens, joint objective, bf16: data-parallel scaling of the 1.5B config
# from one GPU to all of them at a fixed per-GPU batch (micro-batch 2, 4 micro-batches per step), with and
# without ZeRO-1; the 1.5B config with tensor parallelism tp=2; the 7.6B config with tp=2 (micro-batch 1).
# Expects build-gpu/ from tests/gpu/run.sh (built here when missing) and .devdeps/ carried along.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=4
[[ -x build-gpu/ratplus ]] || bash tests/gpu/run.sh >"$out/build.log" 2>&1
gpus=$(nvidia-smi -L | wc -l)
steps=${STEPS:-4}
# bench NAME RANKS ARGS...: one measurement, its JSON in $out/NAME.json, its report appended to multi-gpu.txt.
bench() {
  local name=$1 ranks=$2
  shift 2
  echo "== $name ($ranks ranks): $*" >>"$out/multi-gpu.txt"
  mpirun -np "$ranks" --bind-to none -x LD_LIBRARY_PATH -x NCCL_NVLS_ENABLE -x OMP_NUM_THREADS \
    build-gpu/ratplus bench train --steps "$steps" --warmup 1 --json "$out/$name.json" "$@" >>"$out/multi-gpu.txt" 2>&1
}
small=(--config configs/ratplus-1.5b.yaml train.objective=joint train.micro_batch=2)
bench 1.5b-dp1 1 "${small[@]}" train.global_batch=8
bench "1.5b-dp$gpus" "$gpus" "${small[@]}" train.global_batch=$((8 * gpus)) parallel.zero1=false
bench "1.5b-dp$gpus-zero1" "$gpus" "${small[@]}" train.global_batch=$((8 * gpus)) parallel.zero1=true
bench 1.5b-tp2 2 "${small[@]}" train.global_batch=8 parallel.tp=2
bench 7.6b-tp2 2 --config configs/ratplus-7.6b.yaml train.objective=joint train.micro_batch=1 train.global_batch=2 \
  parallel.tp=2 parallel.zero1=false
