#!/usr/bin/env bash
# A rank killed in the middle of a data-parallel run ends the whole job, with a non-zero exit and a message,
# within a bounded time (no rank is left waiting in a collective), and the job started again resumes from
# the last checkpoint; a rank that hangs instead ends the job through the collective watchdog.
# RATPLUS_TEST_DEVICE=cuda runs it on two GPUs (NCCL).
# Usage: bash test_killed_rank.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_multirank_test "$@"
args=(data.train=train.bin data.val=train.bin train.steps=100000 train.val_every=0 train.log_every=100000
  train.global_batch=8 train.micro_batch=2 checkpoint.every=5 checkpoint.dir="$WORK/ckpt" train.metrics_jsonl=log.jsonl
  runtime.device="$DEVICE")
# This job's processes, and no other test's: its checkpoint directory is unique to this run.
mine="checkpoint.dir=$WORK/ckpt"

# start_job LOG ENV...: starts the two-rank job in the background (ENV: extra "-x NAME=value" for mpiexec)
# and sets JOB; once the job has written its step-5 checkpoint, sets VICTIM to one of its ranks.
start_job() {
  local log=$1
  shift
  mpi 2 "$@" "$BIN" train --config "$CONFIG" "${args[@]}" >"$log.out" 2>"$log.err" &
  JOB=$!
  for _ in $(seq 1 600); do
    [[ -f ckpt/step_00000005.h5 ]] && break
    sleep 0.05
  done
  VICTIM=$(ratplus_ranks "$mine" | tail -n 1)
}

# job_ends_within SECONDS WHAT: checks that JOB ends within SECONDS (else kills what is left) and sets RC.
job_ends_within() {
  local start=$SECONDS
  for _ in $(seq 1 $(($1 * 20))); do
    kill -0 "$JOB" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$JOB" 2>/dev/null; then
    bad "$2 within $1 s"
    pkill -KILL -f -- "$mine"
  else
    ok "$2 within $1 s ($((SECONDS - start)) s)"
  fi
  wait "$JOB"
  RC=$?
}

start_job job
check "the job is running with its ranks" '[[ -n $VICTIM ]]'
kill -KILL "$VICTIM"
job_ends_within 30 "the job ends after losing a rank"
check "with a non-zero exit code (got $RC)" '[[ $RC -ne 0 ]]'
check "and a message about the lost process" 'grep -qiE "signal|killed|exited|abort" job.err job.out'
check "no rank is left behind" '! pgrep -f -- "$mine" >/dev/null'
mpi 2 "$BIN" train --config "$CONFIG" "${args[@]}" train.stop_after=$(( $(ls ckpt | sed -n 's/step_0*\([0-9]*\).h5/\1/p' | sort -n | tail -n 1) + 2 )) \
  >again.out 2>again.err
check "the job started again resumes from the last checkpoint" 'grep -q "resuming from $WORK/ckpt/step_" again.err'

# A rank that hangs (stopped, not dead: the launcher sees nothing wrong) leaves the other waiting in a
# collective (MPI, or NCCL on GPUs); the collective watchdog ends it after RATPLUS_COLLECTIVE_TIMEOUT seconds.
rm -rf ckpt
start_job hung -x RATPLUS_COLLECTIVE_TIMEOUT=5
kill -STOP "$VICTIM"
job_ends_within 60 "a job with a hung rank ends"
check "with a non-zero exit (got $RC) and the watchdog's message" \
  '[[ $RC -ne 0 ]] && grep -q "timeout: .* waiting for .*a peer may have died or hung" hung.err hung.out'
pkill -KILL -f -- "$mine"
finish
