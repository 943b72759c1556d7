#!/usr/bin/env bash
# A training run that changes layout: a config (joint objective, bf16) on real text is trained in one layout
# and stopped with a checkpoint at step 10; from that checkpoint it is continued to step 20 once in another
# layout and once in the same one. The per-update losses of the two continuations should agree to bf16
# rounding. Defaults (two GPUs): the 1.5B config, tp=2 → dp=2 with ZeRO-1. On eight GPUs, for example:
#   CONFIG=configs/ratplus-7.6b.yaml RANKS=8 FIRST="parallel.tp=4" SECOND="parallel.tp=2" MICRO=1 \
#     bash bench/layout_change.sh Token shards (LLaMA-2 tokens, llm.c format) come from
# $DATA (default runs/text: text-llama2-train.bin, text-llama2-val.bin); checkpoints (18 GB each at 1.5B,
# 92 GB at 7.6B) go to $CKPT (default /dev/shm/ratplus-layout when it has 3 checkpoints' space free, else
# /tmp/ratplus-layout). Logs and the JSONL losses go to $OUT (or ./bench-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
data=${DATA:-runs/text}
config=${CONFIG:-configs/ratplus-1.5b.yaml}
ranks=${RANKS:-2}
first=(${FIRST:-parallel.tp=2})
second=(${SECOND:-parallel.tp=1 parallel.zero1=true})
micro=${MICRO:-2}
need_gb=60
[[ $config == *7.6b* ]] && need_gb=300
shm_free_gb=$(df --output=avail -BG /dev/shm 2>/dev/null | tail -n 1 | tr -dc 0-9)
default_ckpt=/tmp/ratplus-layout
(( ${shm_free_gb:-0} >= need_gb )) && default_ckpt=/dev/shm/ratplus-layout
ckpt=${CKPT:-$default_ckpt}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0 OMP_NUM_THREADS=8
if [[ ! -x build-gpu/ratplus ]]; then
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PWD/.devdeps/usr" >/dev/null
  cmake --build build-gpu -j"$(nproc)" --target ratplus >"$out/build.log" 2>&1 || exit 1
fi
rm -rf "$ckpt"
args=(--config "$config" data.train="$data/text-llama2-train.bin" data.val="$data/text-llama2-val.bin"
  data.eos_id=-1 train.steps=20 train.global_batch=8 train.micro_batch="$micro" train.val_every=0 train.log_every=1
  optim.warmup=0.1 checkpoint.every=0 checkpoint.keep=1)
# train NAME DIR ARGS...: a run on $ranks ranks, its log in $out/NAME.log and its updates in $out/NAME.jsonl.
train() {
  local name=$1 dir=$2
  shift 2
  local start=$SECONDS
  mpirun -np "$ranks" --oversubscribe --bind-to none -x LD_LIBRARY_PATH -x NCCL_NVLS_ENABLE -x OMP_NUM_THREADS \
    build-gpu/ratplus train "${args[@]}" checkpoint.dir="$dir" train.metrics_jsonl="$out/$name.jsonl" "$@" \
    >"$out/$name.log" 2>&1
  echo "$name: exit $?, $((SECONDS - start)) s (checkpoints in $ckpt)"
}
train first "$ckpt/first" "${first[@]}" train.stop_after=10
mkdir -p "$ckpt/other" "$ckpt/same"
ln "$ckpt"/first/step_00000010.h5 "$ckpt/other/" && ln "$ckpt"/first/step_00000010.h5 "$ckpt/same/"
train continued-other-layout "$ckpt/other" "${second[@]}"
train continued-same-layout "$ckpt/same" "${first[@]}"
grep -h "resuming\|checkpoint \|memory plan\|finished\|stopping" "$out"/*.log
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
load = lambda name: [r for r in map(json.loads, open(f"{out}/{name}.jsonl")) if "pass" in r]
first, other, same = load("first"), load("continued-other-layout"), load("continued-same-layout")
print("step pass   first       then same   then other      rel.diff")
for x in first:
    print(f"{x['step']:4} {x['pass']:6} {x['loss']:10.4f}")
worst = 0
for a, b in zip(same, other):
    diff = abs(a['loss'] - b['loss']) / a['loss']
    worst = max(worst, diff)
    print(f"{a['step']:4} {a['pass']:6} {'':10} {a['loss']:10.4f} {b['loss']:14.4f} {diff:10.2e}")
print(f"largest relative difference between the continuations: {worst:.2e}")
PY
