#!/usr/bin/env bash
# bench/science.sh end to end at a tiny scale on the CPU (generated shards, 2 layers of 32, T 128, a few steps):
# it trains the three models, adapts each, and writes science.md and science.json whose numbers are those the
# commands give when run by hand on its checkpoints (the dense and top-k losses of the RAT+ model, the adapted
# model's dilated(16) loss), with recall scores in [0, 1] for every model and pattern, the patterns of
# MORE_PATTERNS and TOPK_PATTERNS among them; a folder without shards is refused with exit 2.
# Usage: bash test_science.sh /path/to/ratplus
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
mkdir data
"$BIN" data synth --out data/train_000000.bin --tokens 200000 --vocab 256 --seed 1 2>/dev/null
"$BIN" data synth --out data/val_000000.bin --tokens 50000 --vocab 256 --seed 2 2>/dev/null
export BIN STEPS=12 ADAPT_STEPS=4 BATCH=4 D_MODEL=32 LAYERS=2 HEADS=2 VOCAB=256 SEQ_LEN=128 EOS_ID=0 \
  EVAL_BATCHES=2 RECALL_NEEDLES=2 DEVICE=cpu MORE_PATTERNS="local:W=16,P=2" TOPK_PATTERNS="topk:B=64,K=4 topk:B=16,K=2,W=8"
bash "$REPO/bench/science.sh" data out >science.out 2>science.log
check "science.sh ends with exit 0 and prints the table" \
  '[[ $? -eq 0 ]] && grep -q "^| ratplus-joint |" science.out && [[ -s out/science.md ]]'
base=$(printf 'out/ratplus-joint/base/step_%08d.h5' 12)
adapted=$(printf 'out/ratplus-joint/adapted/step_%08d.h5' 4)
"$BIN" eval --checkpoint "$base" --data data/val_000000.bin --seq-len 128 --batches 2 --eos-id 0 --device cpu \
  --pattern dense --pattern topk:B=64,K=4 --json base.json >/dev/null 2>&1
"$BIN" eval --checkpoint "$adapted" --data data/val_000000.bin --seq-len 128 --batches 2 --eos-id 0 --device cpu \
  --pattern dilated:D=16 --json adapted.json >/dev/null 2>&1
check "science.json holds the losses the commands give by hand, and recall scores for every model" "$PY - <<'PY'
import json
s = json.load(open('out/science.json'))
rows = {r['model']: r for r in s['models']}
assert sorted(rows) == ['attention-dense', 'attention-joint', 'ratplus-joint'], sorted(rows)
by_hand = {r['pattern']: r['loss'] for r in json.load(open('base.json'))['results']}
r = rows['ratplus-joint']
assert r['loss']['dense'] == by_hand['dense'] and r['topk_loss']['topk:B=64,K=4'] == by_hand['topk:B=64,K=4'], (r, by_hand)
assert r['adapted_loss']['dilated:D=16'] == json.load(open('adapted.json'))['results'][0]['loss']
for m in rows.values():
    assert sorted(m['loss']) == ['dense', 'dilated:D=16', 'dilated:D=64', 'local:W=16,P=2'], m
    assert sorted(m['topk_loss']) == ['topk:B=16,K=2,W=8', 'topk:B=64,K=4'], m
    assert all(0 <= v <= 1 for v in m['recall_exact_match'].values()) and len(m['recall_exact_match']) == 4, m
PY"
bash "$REPO/bench/science.sh" nothing-here out2 >/dev/null 2>refused.log
check "a folder without shards: exit 2 naming it" '[[ $? -eq 2 ]] && grep -q "nothing-here" refused.log'
finish
