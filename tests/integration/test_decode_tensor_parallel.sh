#!/usr/bin/env bash
# Decoding with the model split by tensor parallelism over MPI ranks (`generate --tp 2` and `bench decode
# --tp 2` under mpiexec -n 2) gives what one process gives: the same tokens and their log-probabilities to f32
# rounding, for RAT+ (tied and untied head) and the attention-only model, under dense, dilated with window
# and sinks, and per-head hybrid patterns (one with top-k block heads), with prompts of different lengths
# decoded in one batch, greedy and sampled; each rank holds half of the heads' caches; a --tp that does not match the ranks or the model is
# refused with exit 2. RATPLUS_TEST_DEVICE=cuda runs it on two GPUs (NCCL) in f32.
# Usage: bash test_decode_tensor_parallel.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_multirank_test "$@"

prompts="prompts.txt"
printf '5 17 3 99 4 8 250 1 2 3 4 5 6\n7\n12 13 14 15 16 17 18 19 20\n' >"$prompts"
same_generation() {  # A.json B.json: the same tokens, log-probs within 1e-5
  $PY - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(f))["sequences"] for f in sys.argv[1:3])
assert len(a) == len(b) == 3, (len(a), len(b))
for x, y in zip(a, b):
    assert x["tokens"] == y["tokens"], (x["tokens"], y["tokens"])
    assert len(x["tokens"]) == 12
    worst = max(abs(p - q) for p, q in zip(x["logprobs"], y["logprobs"]))
    assert worst < 1e-5, worst
PY
}

for model in "ratplus" "untied model.tie_embeddings=false" "attention model.recurrence=false"; do
  read -r name overrides <<<"$model"
  # shellcheck disable=SC2086  # the overrides are words
  "$BIN" init --config "$CONFIG" --out "$name.h5" train.seed=3 $overrides 2>/dev/null
  # The top-k hybrid gives each rank a top-k head.
  patterns=(dense "dilated:D=3,W=2,P=1" "heads=2:dense+2:dilated:D=4,W=1" "heads=1:dense+3:topk:B=3,K=1,W=1,score=moba")
  for pattern in "${patterns[@]}"; do
    for sampling in "--temperature 0" "--temperature 1 --top-p 0.9 --seed 5"; do
      tag="$name, ${pattern%%:*}, $([[ $sampling == *" 0" ]] && echo greedy || echo sampled)"
      # shellcheck disable=SC2086
      run=(generate --checkpoint "$name.h5" --prompt-file "$prompts" --max-new 12 --pattern "$pattern"
        --device "$DEVICE" $sampling)
      "$BIN" "${run[@]}" --json one.json >/dev/null 2>one.log
      mpi 2 "$BIN" "${run[@]}" --tp 2 --json tp2.json >tp2.out 2>tp2.log
      check "$tag: tp=2 generates what one process does" 'same_generation one.json tp2.json'
    done
  done
done
check "only rank 0 prints: three lines" '[[ $(wc -l <tp2.out) -eq 3 ]]'

bench=(bench decode --config "$CONFIG" --context 64 --gen 4 --batch 3 --pattern dense --device "$DEVICE")
"$BIN" "${bench[@]}" --json bench_one.json >/dev/null 2>&1
mpi 2 "$BIN" "${bench[@]}" --tp 2 --json bench_tp2.json >bench_tp2.out 2>&1
check "bench decode --tp 2 runs and reports tp 2" \
  "$PY -c 'import json; j = json.load(open(\"bench_tp2.json\")); assert j[\"tp\"] == 2 and j[\"tokens_per_s\"] > 0'"
# Dense at T 64: per layer, 64 slots of keys and values of this rank's heads (f32) and their positions, plus
# the recurrent state of the rank's channels (2 layers, 4 heads of 16).
check "each rank holds the caches and state of its 2 of 4 heads" "$PY - <<'PY'
import json
one, two = (json.load(open(f))['cache_bytes_per_sequence'] for f in ('bench_one.json', 'bench_tp2.json'))
per_layer = lambda heads: 64 * (2 * heads * 16 * 4 + 4) + 2 * heads * 16 * 4
assert one == 2 * per_layer(4) and two == 2 * per_layer(2), (one, two)
PY"

"$BIN" generate --checkpoint ratplus.h5 --prompt-tokens 1,2 --max-new 2 --pattern dense --tp 2 --device "$DEVICE" \
  >/dev/null 2>refused.log
check "--tp 2 in one process: exit 2 naming the rank count" '[[ $? -eq 2 ]] && grep -q "needs 2 ranks" refused.log'
mpi 3 "$BIN" generate --checkpoint ratplus.h5 --prompt-tokens 1,2 --max-new 2 --pattern dense --tp 3 \
  --device "$DEVICE" >/dev/null 2>refused3.log
check "--tp 3 of 4 heads: exit 2 naming the split" '[[ $? -eq 2 ]] && grep -q -- "--tp" refused3.log'
finish
