#!/usr/bin/env bash
# Multi-GPU training measurements on one node (2 or more GPUs), into $OUT (or ./bench-out), all with
# `ratplus bench train` on random tokens, joint objective, bf16: data-parallel scaling of the 1.5B config
# from one GPU to 2, 4, 8 … (up to the node's GPUs) at a fixed per-GPU batch (micro-batch 2, 4 micro-batches
# per step), with and without ZeRO-1; the 1.5B config with tensor parallelism tp=2; the 7.6B config with tp=2
# (micro-batch 1) and, on 4 or more GPUs, tp=2 and tp=4 times the remaining data parallelism with ZeRO-1.
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
# bench NAME RANKS ARGS...: one measurement, its JSON in $out/NAME.json, its report appended to multi-gpu.txt;
# skipped unless NAME matches the regular expression $ONLY (when set), so a long list can be split over calls.
bench() {
  local name=$1 ranks=$2
  shift 2
  [[ -n ${ONLY:-} && ! $name =~ $ONLY ]] && return
  echo "== $name ($ranks ranks): $*" >>"$out/multi-gpu.txt"
  mpirun -np "$ranks" --bind-to none -x LD_LIBRARY_PATH -x NCCL_NVLS_ENABLE -x OMP_NUM_THREADS \
    build-gpu/ratplus bench train --steps "$steps" --warmup 1 --json "$out/$name.json" "$@" >>"$out/multi-gpu.txt" 2>&1
}
small=(--config configs/ratplus-1.5b.yaml train.objective=joint train.micro_batch=2)
bench 1.5b-dp1 1 "${small[@]}" train.global_batch=8
# Data-parallel scaling at a fixed per-GPU batch: 2, 4, 8 … GPUs up to the node's, with and without ZeRO-1.
for ((n = 2; n <= gpus; n *= 2)); do
  bench "1.5b-dp$n" "$n" "${small[@]}" train.global_batch=$((8 * n)) parallel.zero1=false
  bench "1.5b-dp$n-zero1" "$n" "${small[@]}" train.global_batch=$((8 * n)) parallel.zero1=true
done
bench 1.5b-tp2 2 "${small[@]}" train.global_batch=8 parallel.tp=2
# 7.6B: tp=2 alone, then with data parallelism (ZeRO-1) and tp=4 where the node has the GPUs.
big=(--config configs/ratplus-7.6b.yaml train.objective=joint train.micro_batch=1)
bench 7.6b-tp2 2 "${big[@]}" train.global_batch=2 parallel.tp=2 parallel.zero1=false
for tp in 2 4; do
  if ((gpus >= 2 * tp)); then
    bench "7.6b-tp$tp-dp$((gpus / tp))" "$gpus" "${big[@]}" train.global_batch=$((2 * gpus / tp)) parallel.tp=$tp \
      parallel.zero1=true
  fi
done
