#!/usr/bin/env bash
# `ratplus bench decode` (cli/bench_decode_command.cpp) on the tiny config, on the CPU: a smoke test (no timing
# asserted) that exits 0, prints its report and writes one JSON object with exactly the keys of SPEC §10; the
# dilated(16) cache at T 1024 is about 1/16 of the dense one; the bytes a step moves are the weights plus every
# sequence's cache (at the timed steps' mean length, T − G/2) and logits (4 bytes per vocabulary entry); an
# 8-bit cache (--cache int8) holds 1-byte keys and values and a 4-byte scale per slot and head instead of
# 4-byte (f32) ones. Bad requests exit 2 naming what is wrong, with no JSON.
# Usage: bash test_bench_decode.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
CONFIG=$REPO/configs/tiny.yaml

for pattern in dense dilated:D=16; do
  timeout 300 "$BIN" bench decode --config "$CONFIG" --context 1024 --gen 8 --batch 3 --pattern "$pattern" \
      --json "$pattern.json" >stdout.txt 2>stderr.txt
  rc=$?
  if [ "$rc" -eq 0 ]; then ok "bench decode $pattern exits 0"; else bad "bench decode $pattern exits 0" \
      "exit $rc: $(head -c 400 stderr.txt)"; fi
  problems=$(unmatched stdout "$(cat stdout.txt)" 'E:[0-9.]+ tokens/s' 'E:bytes per sequence' F:memory)
  if [ -z "$problems" ]; then ok "it prints its report"; else bad "it prints its report" "$problems"; fi
done

problems=$("$PY" - <<'PY'
import json
VOCAB = 256  # configs/tiny.yaml
dense, sparse = json.load(open("dense.json")), json.load(open("dilated:D=16.json"))
keys = {"context", "gen", "batch", "pattern", "cache", "tp", "tokens_per_s", "ms_per_step", "cache_bytes_per_sequence",
        "weight_bytes", "peak_memory_bytes", "hbm_bytes_per_step", "hbm_fraction"}
for j in (dense, sparse):
    if set(j) != keys:
        print("keys %s" % sorted(set(j) ^ keys))
    if j["context"] != 1024 or j["gen"] != 8 or j["batch"] != 3 or j["tp"] != 1 or j["cache"] != "model":
        print("context, gen, batch, tp: %s %s %s %s" % (j["context"], j["gen"], j["batch"], j["tp"]))
    if not j["tokens_per_s"] > 0 or not j["ms_per_step"] > 0:
        print("speed %s %s" % (j["tokens_per_s"], j["ms_per_step"]))
    cache, logits = j["cache_bytes_per_sequence"], 4 * VOCAB
    low = j["weight_bytes"] + 3 * (cache * (1024 - 8) / 1024 * 0.99 + logits)
    high = j["weight_bytes"] + 3 * (cache + logits)
    if not low <= j["hbm_bytes_per_step"] <= high:
        print("bytes per step %s outside [%s, %s]" % (j["hbm_bytes_per_step"], low, high))
ratio = sparse["cache_bytes_per_sequence"] / dense["cache_bytes_per_sequence"]
if not 1 / 17 < ratio < 1 / 15:
    print("dilated(16) cache / dense cache = %.4f" % ratio)
PY
)
if [ -z "$problems" ]; then ok "JSON keys, bytes per step, and a dilated(16) cache of ~1/16 of dense"; else
  bad "JSON keys, bytes per step, and a dilated(16) cache of ~1/16 of dense" "$problems"; fi

timeout 300 "$BIN" bench decode --config "$CONFIG" --context 1024 --gen 8 --batch 3 --pattern dense --cache int8 \
    --json int8.json >stdout.txt 2>stderr.txt
rc=$?
if [ "$rc" -eq 0 ]; then ok "bench decode --cache int8 exits 0"; else bad "bench decode --cache int8 exits 0" \
    "exit $rc: $(head -c 400 stderr.txt)"; fi
problems=$(unmatched stdout "$(cat stdout.txt)" 'F:8-bit cache' 'E:[0-9.]+ tokens/s')
problems+=$("$PY" - <<'PY'
import json
dense, int8 = json.load(open("dense.json")), json.load(open("int8.json"))
if int8["cache"] != "int8":
    print("cache %s" % int8["cache"])
# 2 layers × 1024 dense slots × 4 heads × (key + value) × (16 f32 channels − (16 int8 channels + one f32 scale))
saved = 2 * 1024 * 4 * 2 * (16 * 4 - (16 + 4))
if dense["cache_bytes_per_sequence"] - int8["cache_bytes_per_sequence"] != saved:
    print("the 8-bit cache saves %d bytes per sequence, expected %d" %
          (dense["cache_bytes_per_sequence"] - int8["cache_bytes_per_sequence"], saved))
PY
)
if [ -z "$problems" ]; then ok "an 8-bit cache holds 1-byte values and one scale per slot and head"; else
  bad "an 8-bit cache holds 1-byte values and one scale per slot and head" "$problems"; fi

base=("$BIN" bench decode --json out.json --config "$CONFIG")
expect_usage_error "context below gen exits 2" "--context 8 must exceed --gen 16" \
    "${base[@]}" --context 8 --gen 16 --pattern dense
expect_usage_error "an unknown pattern exits 2" "sparse" "${base[@]}" --context 64 --gen 4 --pattern sparse:X=1
expect_usage_error "a batch that is no number exits 2" "--batch must be a positive number" \
    "${base[@]}" --context 64 --gen 4 --pattern dense --batch many
expect_usage_error "a batch that cannot fit exits 2" "the caches need" \
    "${base[@]}" --context 64 --gen 4 --pattern dense --batch 100000000000
expect_usage_error "neither config nor checkpoint exits 2" "give --config or --checkpoint" \
    "$BIN" bench decode --json out.json --context 64 --gen 4 --pattern dense

finish
