#!/usr/bin/env bash
# `ratplus bench prefill` (cli/bench_prefill_command.cpp) on the tiny config, on the CPU: a smoke test (no timing
# asserted) of the whole model and of one layer's temporal-mixing core, each writing one JSON object with the
# context, pattern, scope, device, a positive time and tokens/s = T / time; bad requests exit 2 with no JSON.
# Usage: bash test_bench_prefill.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
CONFIG=$REPO/configs/tiny.yaml

for scope in model operator; do
  flag=()
  [ "$scope" = operator ] && flag=(--operator)
  timeout 300 "$BIN" bench prefill --config "$CONFIG" --context 1000 --pattern dilated:D=16,W=8 --device cpu \
      --repeats 2 "${flag[@]}" --json "$scope.json" >stdout.txt 2>stderr.txt
  rc=$?
  if [ "$rc" -eq 0 ]; then ok "bench prefill ($scope) exits 0"; else bad "bench prefill ($scope) exits 0" \
      "exit $rc: $(head -c 400 stderr.txt)"; fi
  problems=$("$PY" - "$scope" <<'PY'
import json, sys
scope = sys.argv[1]
j = json.load(open(scope + ".json"))
if set(j) != {"context", "pattern", "scope", "device", "seconds", "tokens_per_s"}:
    print("keys %s" % sorted(j))
elif (j["context"], j["pattern"], j["scope"], j["device"]) != (1000, "dilated:D=16,W=8", scope, "cpu"):
    print("values %s" % j)
elif not (j["seconds"] > 0 and abs(j["tokens_per_s"] * j["seconds"] - 1000) < 1e-6 * 1000):
    print("time %s, tokens/s %s" % (j["seconds"], j["tokens_per_s"]))
PY
)
  if [ -z "$problems" ]; then ok "its JSON ($scope)"; else bad "its JSON ($scope)" "$problems"; fi
done

base=("$BIN" bench prefill --json out.json --config "$CONFIG" --pattern dense)
expect_usage_error "a context of 0 exits 2" "--context must be 1 to 262144" "${base[@]}" --context 0
expect_usage_error "a context above 262144 exits 2" "--context must be 1 to 262144" "${base[@]}" --context 262145
expect_usage_error "a pattern that does not fit exits 2" "layers" \
    "$BIN" bench prefill --json out.json --config "$CONFIG" --context 16 --pattern "layers=dense*7"
expect_usage_error "neither config nor checkpoint exits 2" "give --config or --checkpoint" \
    "$BIN" bench prefill --json out.json --context 16 --pattern dense

finish
