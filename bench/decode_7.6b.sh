#!/usr/bin/env bash
# Decoding the 7.6B config on a GPU machine, into $OUT (or ./bench-out): batch 1 at T 4096 (dense and
# dilated(16); a step must read all 15.3 GB of bf16 weights, so the roofline is 4.3 TB/s over the weight and
# cache bytes: the report's "HBM" column), beside the PyTorch reference-style decoder (eager) on the same GPU;
# then, on a machine of two or more GPUs, the model split over two of them (`--tp 2` under mpirun) at T 4096
# and 16384, dense and dilated(64), at the largest batch that fits. GEN tokens are timed (default 1024).
# Expects build-gpu/ (tests/gpu/run.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
gen=${GEN:-1024}
config=configs/ratplus-7.6b.yaml
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
[[ -x build-gpu/ratplus ]] || bash tests/gpu/run.sh >"$out/build.log" 2>&1
for pattern in dense dilated:D=16; do
  name=7.6b-4096-1-${pattern//[:=]/}
  build-gpu/ratplus bench decode --config "$config" --context 4096 --gen "$gen" --batch 1 --pattern "$pattern" \
    --json "$out/ratplus-$name.json" >>"$out/decode-7.6b.txt" 2>&1
  timeout 600 python3 tools/torch_baseline.py bench-decode --config-size 7.6b --context 4096 --gen "$gen" \
    --batch 1 --pattern "$pattern" >"$out/torch-eager-$name.json" 2>>"$out/torch.log"
done
if (($(nvidia-smi -L | wc -l) >= 2)); then
  [[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  for run in "4096 dense" "4096 dilated:D=64" "16384 dense" "16384 dilated:D=64"; do
    read -r context pattern <<<"$run"
    name=7.6b-tp2-$context-${pattern//[:=]/}
    mpirun -n 2 --bind-to none -x LD_LIBRARY_PATH -x NCCL_NVLS_ENABLE=0 build-gpu/ratplus bench decode \
      --config "$config" --context "$context" --gen "$gen" --batch auto --pattern "$pattern" --tp 2 \
      --json "$out/ratplus-$name.json" >>"$out/decode-7.6b.txt" 2>&1
  done
fi
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
print("| run | context | batch | pattern | ratplus tok/s | ms/step | HBM per GPU | torch eager tok/s |")
print("|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(out, "ratplus-7.6b-*.json"))):
    r = json.load(open(path))
    name = os.path.basename(path)[len("ratplus-"):]
    try:
        torch = "%.1f" % json.load(open(os.path.join(out, "torch-eager-" + name)))["tokens_per_s"]
    except (OSError, ValueError, KeyError):
        torch = "—"
    print("| %s | %d | %d | %s | %.1f | %.2f | %.0f%% | %s |" % ("tp %d" % r["tp"], r["context"], r["batch"],
          r["pattern"], r["tokens_per_s"], r["ms_per_step"], 100 * r["hbm_fraction"], torch))
PY
