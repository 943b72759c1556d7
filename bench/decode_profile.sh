#!/usr/bin/env bash
# Where a decoding step's time goes, per kernel: Nsight Compute times every kernel (and its DRAM bytes) of
# STEPS decoding steps of `ratplus bench decode` on a GPU machine, the captured steps' graphs node by node,
# and tools/kernel_profile.py sums them per kernel and divides by STEPS, into $OUT/decode-profile.md (or
# ./bench-out). The arguments go to `bench decode` (the 1.5B config unless they name another), e.g.
#   bash bench/decode_profile.sh --context 4096 --batch 2048 --pattern dilated:D=64 [--cache int8]
# The cache's synthetic fill before the steps runs kernels of its own (an 8-bit cache's quantization), listed
# with the rest. Expects build-gpu/ (tests/gpu/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
steps=${STEPS:-3}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
config=(--config configs/ratplus-1.5b.yaml)
[[ " $* " == *" --config "* || " $* " == *" --checkpoint "* ]] && config=()
ncu --clock-control none --graph-profiling node --csv --print-units base \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
  build-gpu/ratplus bench decode "${config[@]}" --gen "$steps" "$@" >"$out/decode-profile.csv"
python3 tools/kernel_profile.py "$out/decode-profile.csv" --steps "$steps" >"$out/decode-profile.md"
cat "$out/decode-profile.md"
