#!/usr/bin/env bash
# `ratplus bench train` (cli/bench_command.cpp): a short benchmark of the tiny config exits 0, prints its
# report and writes one JSON object with a positive step time and throughput and tokens_per_step =
# global_batch × seq_len of the config; its temporary random-token shard is gone afterwards. A bad config
# override or step count is refused with exit code 2 and no JSON.
# Usage: bash test_bench.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
CONFIG=$REPO/configs/tiny.yaml
mkdir tmp

# --- a short benchmark -------------------------------------------------------------------
TMPDIR=$WORK/tmp timeout 300 "$BIN" bench train --config "$CONFIG" --steps 3 --warmup 1 --json out.json \
    >stdout.txt 2>stderr.txt
rc=$?
if [ "$rc" -eq 0 ]; then ok "bench train exits 0"; else bad "bench train exits 0" "exit $rc: $(head -c 400 stderr.txt)"
fi
problems=$(unmatched stdout "$(cat stdout.txt)" F:parameters "F:tokens per step" 'E:median [0-9.]+ s' \
    'E:[0-9]+ tokens/s' F:memory)
if [ -z "$problems" ]; then ok "bench train prints its report"; else bad "bench train prints its report" "$problems"; fi
check "the temporary shard is removed" '[ -z "$(ls -A tmp)" ]'

problems=$("$PY" - "$CONFIG" out.json <<'EOF'
import json
import re
import sys

config = open(sys.argv[1]).read()
def config_value(key):
    return int(re.search(rf"^\s*{key}:\s*(\d+)", config, re.M).group(1))

try:
    r = json.load(open(sys.argv[2]))
except (OSError, ValueError) as e:
    print(f"no JSON object in out.json: {e}")
    sys.exit()
expected = config_value("global_batch") * config_value("seq_len")
problems = []
for key in ("tokens_per_second", "step_seconds", "parameters"):
    if not (isinstance(r.get(key), (int, float)) and r[key] > 0):
        problems.append(f"{key} is {r.get(key)!r}, not a positive number")
if r.get("tokens_per_step") != expected:
    problems.append(f"tokens_per_step is {r.get('tokens_per_step')!r}, not global_batch x seq_len = {expected}")
if r.get("steps") != 3 or r.get("warmup_steps") != 1:
    problems.append(f"steps {r.get('steps')!r} and warmup_steps {r.get('warmup_steps')!r}, not 3 and 1")
if r.get("device") == "cuda" and not 0 < r.get("mfu", 0) < 1:
    problems.append(f"mfu on cuda is {r.get('mfu')!r}")
print("; ".join(problems))
EOF
)
if [ -z "$problems" ]; then ok "bench train JSON"; else bad "bench train JSON" "$problems"; fi

# --- bad input ---------------------------------------------------------------------------
expect_usage_error "bad config override exits 2 and names the key" nope \
    "$BIN" bench train --config "$CONFIG" --steps 1 --warmup 0 --json out.json model.nope=3
expect_usage_error "--steps 0 exits 2" --steps \
    "$BIN" bench train --config "$CONFIG" --steps 0 --json out.json

finish
