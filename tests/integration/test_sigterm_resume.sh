#!/usr/bin/env bash
# A training run stopped by SIGTERM (exit code 75, with a checkpoint) and started again ends exactly where an
# uninterrupted run ends: the same final parameters and optimizer moments (bitwise) and the same logged losses;
# also when a checkpoint is being written in the background at every step.
# Usage: bash test_sigterm_resume.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_test "$@"
config=$REPO/configs/tiny.yaml

"$BIN" data synth --out train.bin --tokens 300000 --vocab 256 --seed 1 2>/dev/null
args=(data.train=train.bin data.val=train.bin train.steps=60 train.val_every=0 train.log_every=1000
  data.order=random checkpoint.every=1000)
"$BIN" train --config "$config" "${args[@]}" checkpoint.dir=straight train.metrics_jsonl=straight.jsonl 2>/dev/null

"$BIN" train --config "$config" "${args[@]}" checkpoint.dir=split train.metrics_jsonl=split.jsonl 2>split.log &
pid=$!
# Stop it once it is well into the run (each step logs two lines: sparse and dense).
for _ in $(seq 1 600); do
  [[ -f split.jsonl && $(wc -l <split.jsonl) -ge 30 ]] && break
  sleep 0.05
done
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM ends the run with exit code 75 (got $rc)" '[[ $rc -eq 75 ]]'
stopped=$(ls split/step_*.h5 2>/dev/null | head -n 1)
check "a checkpoint was written when stopping ($stopped)" '[[ -n $stopped && $stopped != split/step_00000060.h5 ]]'
check "the log says how to continue" 'grep -q "run the same command again" split.log'

"$BIN" train --config "$config" "${args[@]}" checkpoint.dir=split train.metrics_jsonl=split.jsonl 2>resume.log
check "the second run resumes from the stop" 'grep -q "resuming from $stopped" resume.log'
check "the logged records are identical (times apart)" 'same_log straight.jsonl split.jsonl'
check "final parameters and moments are bitwise identical" "$PY - <<'PY'
import h5py, numpy as np, sys
a = h5py.File('straight/step_00000060.h5', 'r'); b = h5py.File('split/step_00000060.h5', 'r')
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert len(names) > 10, names
sys.exit(0 if all(np.array_equal(a[n][()], b[n][()]) for n in names) else 1)
PY"

# With a checkpoint after every step, one is being written in the background whenever the signal comes: the
# stop waits for it, writes its own, and the resumed run still ends bitwise equal.
"$BIN" train --config "$config" "${args[@]}" checkpoint.every=1 checkpoint.keep=2 checkpoint.dir=busy \
    train.metrics_jsonl=busy.jsonl 2>busy.log &
pid=$!
for _ in $(seq 1 600); do
  [[ -f busy.jsonl && $(wc -l <busy.jsonl) -ge 30 ]] && break
  sleep 0.05
done
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM during background checkpoint writes ends the run with exit code 75 (got $rc)" '[[ $rc -eq 75 ]]'
check "no temporary file is left" '[[ -z $(ls busy | grep tmp) ]]'
"$BIN" train --config "$config" "${args[@]}" checkpoint.every=1 checkpoint.keep=2 checkpoint.dir=busy \
    train.metrics_jsonl=busy.jsonl 2>busy_resume.log
check "it resumes from the checkpoint written at the stop" \
    'grep -q "resuming from busy/step_" busy_resume.log && ! grep -q "not resuming" busy_resume.log'
check "its logged records are identical to the uninterrupted run's (times apart)" 'same_log straight.jsonl busy.jsonl'
check "its final parameters and moments are bitwise identical" "$PY - <<'PY'
import h5py, numpy as np, sys
a = h5py.File('straight/step_00000060.h5', 'r'); b = h5py.File('busy/step_00000060.h5', 'r')
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
sys.exit(0 if all(np.array_equal(a[n][()], b[n][()]) for n in names) else 1)
PY"

finish
