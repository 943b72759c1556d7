#!/usr/bin/env bash
# Decoding throughput of ratplus beside the PyTorch reference-style decoder (tools/torch_baseline.py
# bench-decode), in one run on a GPU machine, into $OUT (or ./bench-out): the 1.5B config at T 16384 (dense,
# batch 32; dilated(64), batch 2048) and T 4096 (dilated(64), batch 2048), GEN generated tokens timed
# (default 1024), PyTorch eager and (with COMPILE=1) torch.compile; then the dilated(64) rows again with
# ratplus's 8-bit cache (`--cache int8`; the reference implementation has none). RUNS chooses rows by their
# names (e.g. RUNS="16384-2048-dilatedD64-int8"). Expects build-gpu/ (tests/gpu/run.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench-out}
gen=${GEN:-1024}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
[[ -x build-gpu/ratplus ]] || bash tests/gpu/run.sh >"$out/build.log" 2>&1
runs=("16384 32 dense model" "16384 2048 dilated:D=64 model" "4096 2048 dilated:D=64 model"
  "16384 2048 dilated:D=64 int8" "4096 2048 dilated:D=64 int8")
for run in "${runs[@]}"; do
  read -r context batch pattern cache <<<"$run"
  name=$context-$batch-${pattern//[:=]/}
  [[ $cache == int8 ]] && name+=-int8
  [[ -n ${RUNS:-} && " $RUNS " != *" $name "* ]] && continue
  build-gpu/ratplus bench decode --config configs/ratplus-1.5b.yaml --context "$context" --gen "$gen" \
    --batch "$batch" --pattern "$pattern" --cache "$cache" --json "$out/ratplus-$name.json" >>"$out/decode.txt" 2>&1
  [[ $cache == int8 ]] && continue
  variants=(eager)
  [[ ${COMPILE:-0} == 1 ]] && variants+=(compiled)
  for variant in "${variants[@]}"; do
    flag=()
    [[ $variant == compiled ]] && flag=(--compile)
    timeout 600 python3 tools/torch_baseline.py bench-decode --config-size 1.5b --context "$context" --gen "$gen" \
      --batch "$batch" --pattern "$pattern" "${flag[@]}" >"$out/torch-$variant-$name.json" 2>>"$out/torch.log"
  done
done
python3 - "$out" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
print("| context | batch | pattern | cache | ratplus tok/s | ms/step | HBM | torch eager tok/s | torch compiled tok/s |")
print("|---|---|---|---|---|---|---|---|---|")
for path in sorted(glob.glob(os.path.join(out, "ratplus-*.json"))):
    r = json.load(open(path))
    name = os.path.basename(path)[len("ratplus-"):]
    def torch(variant):
        try:
            return "%.0f" % json.load(open(os.path.join(out, "torch-%s-%s" % (variant, name))))["tokens_per_s"]
        except (OSError, ValueError, KeyError):
            return "—"
    print("| %d | %d | %s | %s | %.0f | %.2f | %.0f%% | %s | %s |" % (r["context"], r["batch"], r["pattern"],
          r.get("cache", "model"), r["tokens_per_s"], r["ms_per_step"], 100 * r["hbm_fraction"], torch("eager"),
          torch("compiled")))
PY
