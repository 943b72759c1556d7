#!/usr/bin/env bash
# `ratplus bench checkpoint` (cli/bench_checkpoint_command.cpp): on the tiny config it exits 0, prints its
# report and writes one JSON object whose checkpoint size is that of a training checkpoint of the config (12
# bytes per parameter and a little more), with positive save and load times and throughputs that are size
# over time; its directory under --dir is gone afterwards. A --dir that does not exist is refused (exit 2).
# Usage: bash test_bench_checkpoint.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
mkdir disk

timeout 300 "$BIN" bench checkpoint --config "$REPO/configs/tiny.yaml" --dir disk --json out.json \
    >stdout.txt 2>stderr.txt
rc=$?
if [ "$rc" -eq 0 ]; then ok "bench checkpoint exits 0"; else
  bad "bench checkpoint exits 0" "exit $rc: $(head -c 400 stderr.txt)"; fi
problems=$(unmatched stdout "$(cat stdout.txt)" 'E:training stall +[0-9.]+ s' 'E:save .* GB/s' 'E:load .* GB/s')
if [ -z "$problems" ]; then ok "it prints its report"; else bad "it prints its report" "$problems"; fi
check "its directory under --dir is removed" '[ -z "$(ls -A disk)" ]'

problems=$("$PY" - out.json <<'PY'
import json
import sys

try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    print(f"no JSON object in out.json: {e}")
    sys.exit()
problems = []
size = r.get("checkpoint_bytes", 0)
if not 12 * r.get("parameters", 0) < size < 12 * r.get("parameters", 0) + (4 << 20):
    problems.append(f"checkpoint_bytes {size} is not 12 bytes per parameter and a little more")
for key in ("save_seconds", "load_seconds", "save_bytes_per_second", "load_bytes_per_second"):
    if not r.get(key, 0) > 0:
        problems.append(f"{key} is not positive: {r.get(key)}")
for seconds, rate in (("save_seconds", "save_bytes_per_second"), ("load_seconds", "load_bytes_per_second")):
    if r.get(seconds, 0) > 0 and abs(size / r[seconds] - r.get(rate, 0)) > 1e-6 * r.get(rate, 1):
        problems.append(f"{rate} is not checkpoint_bytes / {seconds}")
if not 0 <= r.get("stall_seconds", -1) < 60:
    problems.append(f"stall_seconds {r.get('stall_seconds')}")
print("; ".join(problems))
PY
)
if [ -z "$problems" ]; then ok "the JSON holds consistent sizes, times and throughputs"; else
  bad "the JSON holds consistent sizes, times and throughputs" "$problems"; fi

timeout 60 "$BIN" bench checkpoint --config "$REPO/configs/tiny.yaml" --dir absent >out.txt 2>&1
rc=$?
check "a --dir that does not exist is refused with exit code 2 (got $rc)" '[ "$rc" -eq 2 ]'
check "the message names it" 'grep -q absent out.txt'
finish
