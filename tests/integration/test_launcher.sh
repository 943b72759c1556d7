#!/usr/bin/env bash
# launch/mpirun.sh acts on the exit codes of `ratplus train`: a job that loses a rank (a failure) or whose rank
# gets SIGTERM (a preemption, exit 75) is started again and resumes from its newest checkpoint until it
# finishes (exit 0); bad input (exit 2) and a stop at train.stop_after (exit 3) are not retried; SIGTERM to the
# launcher itself stops the job with a checkpoint and ends the launcher with exit 75, without a restart.
# Usage: bash test_launcher.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_test "$@"
export RATPLUS_BIN=$BIN OMP_NUM_THREADS=1
"$BIN" data synth --out train.bin --tokens 300000 --vocab 256 --seed 1 2>/dev/null
args=(--config "$REPO/configs/tiny.yaml" data.train="$WORK/train.bin" data.val="$WORK/train.bin" train.steps=80
  train.val_every=0 train.log_every=100000 train.global_batch=8 train.micro_batch=2 checkpoint.every=20
  runtime.device=cpu)

# launch NAME ARGS...: launch/mpirun.sh with two ranks and three tries in the background (LAUNCHER: its pid),
# checkpoints in NAME/ (unique to this job, so its processes are told from other tests'), updates in NAME.jsonl,
# output in NAME.out and NAME.err; once the step-20 checkpoint is written, RANKS holds the job's ranks.
launch() {
  local name=$1
  shift
  "$REPO/launch/mpirun.sh" -n 2 --tries 3 -- "${args[@]}" checkpoint.dir="$WORK/$name" \
    train.metrics_jsonl="$WORK/$name.jsonl" "$@" >"$name.out" 2>"$name.err" &
  LAUNCHER=$!
  for _ in $(seq 1 1200); do
    [[ -f $name/step_00000020.h5 ]] && break
    sleep 0.05
  done
  RANKS=$(ratplus_ranks "checkpoint.dir=$WORK/$name")
}

# launcher_ends NAME: waits up to 120 s for the launcher (else kills the job's ranks) and sets RC to its exit code.
launcher_ends() {
  for _ in $(seq 1 1200); do
    kill -0 "$LAUNCHER" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$LAUNCHER" 2>/dev/null; then
    bad "the launcher of $1 ends within 120 s"
    kill -KILL $(ratplus_ranks "checkpoint.dir=$WORK/$1") 2>/dev/null
  fi
  wait "$LAUNCHER"
  RC=$?
  local left
  left=$(ratplus_ranks "checkpoint.dir=$WORK/$1")
  if [[ -n $left ]]; then
    bad "no rank of $1 is left behind"
    kill -KILL $left
  fi
}

# restarts NAME: how many times the launcher started the job NAME again.
restarts() { grep -c "starting again from the newest checkpoint" "$1.err"; }

launch restarted
check "the job is running" '[[ -n $RANKS ]]'
kill -KILL $(tail -n 1 <<<"$RANKS")
# The next start has resumed once it writes a checkpoint (its signal handlers are set by then).
for _ in $(seq 1 1200); do
  grep -A 1000 "resuming from" restarted.err | grep -q "checkpoint $WORK/restarted/step_" && break
  sleep 0.05
done
kill -TERM $(ratplus_ranks "checkpoint.dir=$WORK/restarted" | tail -n 1)
launcher_ends restarted
check "a job that lost a rank is started again" 'grep -q "start 1 ended (exit [^0]" restarted.err'
check "from a checkpoint" 'grep -q "resuming from $WORK/restarted/step_" restarted.err'
check "a job whose rank got SIGTERM stops with exit code 75 and is started again" \
  'grep -q "start 2 ended (exit 75); starting again" restarted.err'
check "the job finishes after these two restarts (exit $RC)" \
  '[[ $RC -eq 0 && -f restarted/step_00000080.h5 && $(restarts restarted) -eq 2 ]]'
check "and every step is logged (the resumed parts again from their checkpoints)" \
  '[[ $(tail -n 1 restarted.jsonl | grep -c "\"step\":79") -eq 1 ]]'

# mpirun's own stop sends SIGKILL odls_base_sigkill_timeout seconds after SIGTERM; at 0 a job stopped that
# way is killed before its checkpoint, so only a stop that does not go through it passes.
export OMPI_MCA_odls_base_sigkill_timeout=0
launch signalled
kill -TERM "$LAUNCHER"
launcher_ends signalled
unset OMPI_MCA_odls_base_sigkill_timeout
check "SIGTERM to the launcher stops the job with a checkpoint and exit code 75 (got $RC), not started again" \
  '[[ $RC -eq 75 && $(restarts signalled) -eq 0 && ! -f signalled/step_00000080.h5 ]] &&
   grep -q "stopping at step" signalled.err'

"$REPO/launch/mpirun.sh" -n 2 --tries 3 -- "${args[@]}" checkpoint.dir="$WORK/planned" train.stop_after=30 \
  >planned.out 2>planned.err
rc=$?
check "a stop at train.stop_after (exit $rc) is not retried" \
  '[[ $rc -eq 3 && $(restarts planned) -eq 0 && -f planned/step_00000030.h5 ]] && grep -q "not restarting" planned.err'
check "and the log says how to continue" \
  'grep -q "run it again with a larger train.stop_after, or with train.stop_after=0" planned.err'

env -u LD_LIBRARY_PATH "$REPO/launch/mpirun.sh" -n 2 --tries 3 -- "${args[@]}" checkpoint.dir="$WORK/bad" train.global_batch=7 \
  >bad.out 2>bad.err
rc=$?
check "bad input is not retried (exit $rc)" '[[ $rc -eq 2 ]] && grep -q "not restarting" bad.err'
check "with LD_LIBRARY_PATH unset, mpirun has nothing to warn about it" '! grep -q LD_LIBRARY_PATH bad.err'
finish
