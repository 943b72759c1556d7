#!/usr/bin/env bash
# `ratplus eval --task recall`: an untrained model scores every pattern and depth at chance (value log-probability
# ≈ −log V, no exact match); the table and the JSON report hold a row per pattern and depth and the layout; the
# same seed gives the same report, another seed another; bad options and data exit 2 naming the option or the
# file and write no report.
# Usage: bash test_eval_recall.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"

"$BIN" init --config "$REPO/configs/tiny.yaml" --out model.h5 2>/dev/null
"$BIN" data synth --out text.bin --tokens 20000 --vocab 256 --seed 4 2>/dev/null
BASE=(eval --task recall --checkpoint model.h5 --pattern dense)
RECALL=("${BASE[@]}" --data text.bin --seq-len 64)

"$BIN" "${RECALL[@]}" --pattern dilated:D=8 --needles 6 --depths 0.2,0.8 --seed 3 --micro-batch 4 \
    --json out.json >stdout.txt 2>stderr.txt
rc=$?
if [ "$rc" -eq 0 ]; then ok "recall exits 0"; else bad "recall exits 0" "exit $rc: $(head -c 400 stderr.txt)"; fi
check "the table has a row per pattern and depth" \
    'grep -qE "^pattern +depth +n +exact_match +value_logprob$" stdout.txt &&
     grep -qE "^dense +0\.200 +6 +[0-9.]+ +-[0-9.]+$" stdout.txt && grep -qE "^dilated:D=8 +0\.800 +6 " stdout.txt &&
     [ "$(wc -l <stdout.txt)" -eq 5 ]'
check "the JSON holds the layout and, per pattern and depth, n, exact match and the value log-probability" '"$PY" - <<PY
import json, math
r = json.load(open("out.json"))
assert (r["task"], r["seq_len"], r["needles"], r["seed"], r["depths"]) == ("recall", 64, 6, 3, [0.2, 0.8]), r
assert (r["key_tokens"], r["value_tokens"], r["haystack_tokens"]) == (4, 4, 65 - 2 * 10), r
assert r["markers"] == {"needle": 255, "separator": 254, "query": 253}, r
rows = r["results"]
assert [(x["pattern"], x["depth"]) for x in rows] == [("dense", 0.2), ("dense", 0.8), ("dilated:D=8", 0.2),
                                                     ("dilated:D=8", 0.8)], rows
for x in rows:
    assert x["n"] == 6 and 0 <= x["exact_match"] <= 1, x
    # weights ~ N(0, 0.02): near-uniform predictions
    assert abs(x["value_logprob"] + math.log(256)) < 0.1, x
PY'

"$BIN" "${RECALL[@]}" --pattern dilated:D=8 --needles 6 --depths 0.2,0.8 --seed 3 --micro-batch 4 \
    --json again.json >/dev/null 2>&1
check "the same seed gives the same report" 'cmp -s out.json again.json'
"$BIN" "${RECALL[@]}" --pattern dilated:D=8 --needles 6 --depths 0.2,0.8 --seed 3 --micro-batch 1 \
    --json one.json >/dev/null 2>&1
check "one sample per pass gives the scores of four" '"$PY" - <<PY
import json
a = json.load(open("out.json"))["results"]; b = json.load(open("one.json"))["results"]
assert len(a) == len(b) == 4
for x, y in zip(a, b):
    assert x["exact_match"] == y["exact_match"] and abs(x["value_logprob"] - y["value_logprob"]) < 1e-5, (x, y)
PY'
"$BIN" "${RECALL[@]}" --pattern dilated:D=8 --needles 6 --depths 0.2,0.8 --seed 4 --micro-batch 4 \
    --json other.json >/dev/null 2>&1
check "another seed gives other needles" '"$PY" - <<PY
import json
a = json.load(open("out.json"))["results"]; b = json.load(open("other.json"))["results"]
assert all(x["value_logprob"] != y["value_logprob"] for x, y in zip(a, b)), (a, b)
PY'
"$BIN" "${RECALL[@]}" --needles 3 >default.txt 2>/dev/null
check "the default depths are 0.1, 0.3, 0.5, 0.7, 0.9" \
    '[ "$(awk "NR > 1 {print \$2}" default.txt | tr "\n" " ")" = "0.100 0.300 0.500 0.700 0.900 " ]'

# --- bad options and data -----------------------------------------------------------------
expect_usage_error "a depth of 0" "--depths: 0 is not inside (0, 1)" "$BIN" "${RECALL[@]}" --depths 0,0.5 --json out.json
expect_usage_error "a depth above 1" "--depths: 1.5 is not inside (0, 1)" "$BIN" "${RECALL[@]}" --depths 1.5 --json out.json
expect_usage_error "a depth given twice" "--depths lists 0.5 twice" "$BIN" "${RECALL[@]}" --depths 0.5,0.5 --json out.json
expect_usage_error "a depth that is not a number" "--depths" "$BIN" "${RECALL[@]}" --depths 0.5,x --json out.json
expect_usage_error "a window too short for a needle and the query" "--seq-len 19 is too short" \
    "$BIN" "${BASE[@]}" --data text.bin --seq-len 19 --json out.json
expect_usage_error "no needles" "--needles must be at least 1" "$BIN" "${RECALL[@]}" --needles 0 --json out.json
"$BIN" data synth --out short.bin --tokens 300 --vocab 256 2>/dev/null
expect_usage_error "too few tokens for the needles" "--data holds 300 tokens in 1 file(s), 6 haystacks of 45 tokens" \
    "$BIN" "${BASE[@]}" --data short.bin --seq-len 64 --needles 7 --json out.json
expect_usage_error "a missing data file" "missing.bin" "$BIN" "${BASE[@]}" --data missing.bin --seq-len 64 --json out.json
expect_usage_error "--batches under --task recall" "--batches does not apply to --task recall" \
    "$BIN" "${RECALL[@]}" --batches 2 --json out.json
expect_usage_error "--eos-id under --task recall" "--eos-id does not apply to --task recall" \
    "$BIN" "${RECALL[@]}" --eos-id 0 --json out.json
expect_usage_error "--needles under --task loss" "--needles does not apply to --task loss" \
    "$BIN" eval --checkpoint model.h5 --data text.bin --seq-len 64 --batches 2 --pattern dense --needles 4 --json out.json
expect_usage_error "a pattern that does not fit the model" "layers=" \
    "$BIN" "${RECALL[@]}" --pattern "layers=dense*3" --json out.json

finish
