#!/usr/bin/env bash
# Measures ratplus against the PyTorch baseline on a GPU machine, in one run, into $OUT (or ./bench-out):
# kernel benchmarks (attention, recurrence scan, cross-entropy), whole training steps of the 1.5B config
# (dense and joint objectives) for both implementations — PyTorch eager and, unless COMPILE=0, compiled —
# and the baseline's attention and scan kernels; then the tables with the ratios (tools/bench_table.py) into
# $OUT/tables.md. PARTS chooses what runs (default all three): "kernels" (both implementations' kernel
# benchmarks), "train" (ratplus and eager PyTorch training steps), "compiled" (the compiled PyTorch steps,
# minutes of compilation each), and OBJECTIVES the training objectives (default "dense joint"); where one
# command may run only minutes, run the parts in turn on the same machine and commit, put their files in one
# folder, and run tools/bench_table.py on it.
# Expects build-gpu/ from tests/gpu/run.sh (built here when missing) and .devdeps/ carried along.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
[[ -x build-gpu/ratplus ]] || bash tests/gpu/run.sh >"$out/build.log" 2>&1
{
  date -u '+%Y-%m-%d %H:%M UTC'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__)'
} >"$out/machine.txt" 2>&1
parts=" ${PARTS:-kernels train compiled} "
if [[ $parts == *" kernels "* ]]; then
  build-gpu/ratplus_kernel_bench --benchmark_filter="${KERNEL_FILTER:-bf16}" \
    --benchmark_format=json --benchmark_out="$out/kernels.json" >"$out/kernels.txt" 2>&1
  for pattern in dense dilated:D=16 dilated:D=64; do
    python3 tools/torch_baseline.py bench-attention --seq-len 4096 --heads 16 --head-dim 128 --batch 2 \
      --pattern $pattern --backward >>"$out/torch-kernels.jsonl" 2>>"$out/torch.log"
  done
  python3 tools/torch_baseline.py bench-attention --seq-len 16384 --heads 8 --head-dim 128 --batch 1 \
    --pattern dense --backward >>"$out/torch-kernels.jsonl" 2>>"$out/torch.log"
  python3 tools/torch_baseline.py bench-scan --seq-len 4096 --batch 2 --d-model 2048 >>"$out/torch-kernels.jsonl" \
    2>>"$out/torch.log"
fi
for objective in ${OBJECTIVES:-dense joint}; do
  if [[ $parts == *" train "* ]]; then
    build-gpu/ratplus bench train --config configs/ratplus-1.5b.yaml train.objective=$objective \
      train.micro_batch=2 train.global_batch=2 parallel.zero1=false --steps 3 --warmup 1 \
      --json "$out/ratplus-1.5b-$objective.json" >>"$out/train.txt" 2>&1
    timeout 300 python3 tools/torch_baseline.py bench-train --config-size 1.5b --seq-len 4096 --micro-batch 2 \
      --objective $objective --steps 5 --warmup 2 >"$out/torch-1.5b-$objective.json" 2>>"$out/torch.log"
  fi
  # torch.compile: its first step holds the compilation (minutes), reported apart; COMPILE=0 skips it.
  if [[ $parts == *" compiled "* && ${COMPILE:-1} != 0 ]]; then
    timeout 1200 python3 tools/torch_baseline.py bench-train --config-size 1.5b --seq-len 4096 --micro-batch 2 \
      --objective $objective --steps 5 --warmup 2 --compile >"$out/torch-1.5b-$objective-compiled.json" \
      2>>"$out/torch.log"
  fi
done
find "$out" -maxdepth 1 -name '*.json' -empty -delete  # a run that failed (its log says why): "—" in the tables
python3 tools/bench_table.py "$out" >"$out/tables.md" && cat "$out/tables.md"
