#!/usr/bin/env bash
# launch/mpirun.sh, the relaunch-until-done launcher: a job that loses a rank is started again and resumes
# from its newest checkpoint until it finishes (exit 0); bad input (exit 2) is not retried.
# Usage: bash test_launcher.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_test "$@"
export RATPLUS_BIN=$BIN OMP_NUM_THREADS=1
"$BIN" data synth --out train.bin --tokens 300000 --vocab 256 --seed 1 2>/dev/null
args=(--config "$REPO/configs/tiny.yaml" data.train="$WORK/train.bin" data.val="$WORK/train.bin" train.steps=400
  train.val_every=0 train.log_every=100000 train.global_batch=8 train.micro_batch=2 checkpoint.every=20
  checkpoint.dir="$WORK/ckpt" train.metrics_jsonl="$WORK/log.jsonl" runtime.device=cpu)
mine="checkpoint.dir=$WORK/ckpt"  # this job's processes, and no other test's

"$REPO/launch/mpirun.sh" -n 2 --tries 3 -- "${args[@]}" >launcher.out 2>launcher.err &
launcher=$!
for _ in $(seq 1 600); do
  [[ -f ckpt/step_00000020.h5 ]] && break
  sleep 0.05
done
victim=$(ratplus_ranks "$mine" | tail -n 1)
check "the job is running" '[[ -n $victim ]]'
kill -KILL "$victim"
for _ in $(seq 1 1200); do
  kill -0 $launcher 2>/dev/null || break
  sleep 0.1
done
if kill -0 $launcher 2>/dev/null; then
  bad "the launcher finishes within 120 s"
  pkill -KILL -f -- "$mine"
fi
wait $launcher
rc=$?
check "the launcher finishes the run (exit $rc)" '[[ $rc -eq 0 && -f ckpt/step_00000400.h5 ]]'
check "after starting it again once" '[[ $(grep -c "starting again from the newest checkpoint" launcher.err) -eq 1 ]]'
check "from a checkpoint" 'grep -q "resuming from $WORK/ckpt/step_" launcher.err'
check "and every step is logged (the resumed part again from the checkpoint)" \
  '[[ $(tail -n 1 log.jsonl | grep -c "\"step\":399") -eq 1 ]]'

"$REPO/launch/mpirun.sh" -n 2 --tries 3 -- "${args[@]}" train.global_batch=7 >bad.out 2>bad.err
rc=$?
check "bad input is not retried (exit $rc)" '[[ $rc -eq 2 ]] && grep -q "not restarting" bad.err'
finish
