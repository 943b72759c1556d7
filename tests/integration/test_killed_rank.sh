#!/usr/bin/env bash
# A rank killed in the middle of a data-parallel run ends the whole job, with a non-zero exit and a message,
# within a bounded time (no rank is left waiting in a collective), and the job started again resumes from
# the last checkpoint; a rank that hangs instead ends the job through the collective watchdog.
# RATPLUS_TEST_DEVICE=cuda runs it on two GPUs (NCCL).
# Usage: bash test_killed_rank.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_test "$@"
use_test_device 2
config=$REPO/configs/tiny.yaml
mpi=(mpiexec -n 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x NCCL_NVLS_ENABLE=0)

"$BIN" data synth --out train.bin --tokens 300000 --vocab 256 --seed 1 2>/dev/null
args=(data.train=train.bin data.val=train.bin train.steps=100000 train.val_every=0 train.log_every=100000
  train.global_batch=8 train.micro_batch=2 checkpoint.every=5 checkpoint.dir="$WORK/ckpt" train.metrics_jsonl=log.jsonl
  runtime.device="$DEVICE")
# This job's processes, and no other test's: its checkpoint directory is unique to this run.
mine="checkpoint.dir=$WORK/ckpt"
"${mpi[@]}" "$BIN" train --config "$config" "${args[@]}" >job.out 2>job.err &
job=$!
for _ in $(seq 1 600); do
  [[ -f ckpt/step_00000005.h5 ]] && break
  sleep 0.05
done
victim=$(pgrep -f -- "$mine" | grep -v "^$job\$" | tail -n 1)
check "the job is running with its ranks" '[[ -n $victim ]]'
kill -KILL "$victim"
start=$SECONDS
for _ in $(seq 1 600); do
  kill -0 $job 2>/dev/null || break
  sleep 0.05
done
if kill -0 $job 2>/dev/null; then
  bad "the job ends within 30 s of losing a rank"
  pkill -KILL -f -- "$mine"
else
  ok "the job ends within 30 s of losing a rank ($((SECONDS - start)) s)"
fi
wait $job
rc=$?
check "with a non-zero exit code (got $rc)" '[[ $rc -ne 0 ]]'
check "and a message about the lost process" 'grep -qiE "signal|killed|exited|abort" job.err job.out'
check "no rank is left behind" '! pgrep -f -- "$mine" >/dev/null'
"${mpi[@]}" "$BIN" train --config "$config" "${args[@]}" train.stop_after=$(( $(ls ckpt | sed -n 's/step_0*\([0-9]*\).h5/\1/p' | sort -n | tail -n 1) + 2 )) \
  >again.out 2>again.err
check "the job started again resumes from the last checkpoint" 'grep -q "resuming from $WORK/ckpt/step_" again.err'

# A rank that hangs (stopped, not dead: the launcher sees nothing wrong) leaves the other waiting in a
# collective (MPI, or NCCL on GPUs); the collective watchdog ends it after RATPLUS_COLLECTIVE_TIMEOUT seconds.
rm -rf ckpt
mpiexec -n 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x NCCL_NVLS_ENABLE=0 \
  -x RATPLUS_COLLECTIVE_TIMEOUT=5 "$BIN" train --config "$config" "${args[@]}" >hung.out 2>hung.err &
job=$!
for _ in $(seq 1 600); do
  [[ -f ckpt/step_00000005.h5 ]] && break
  sleep 0.05
done
victim=$(pgrep -f -- "$mine" | grep -v "^$job\$" | tail -n 1)
kill -STOP "$victim"
start=$SECONDS
for _ in $(seq 1 1200); do
  kill -0 $job 2>/dev/null || break
  sleep 0.05
done
if kill -0 $job 2>/dev/null; then
  bad "a job with a hung rank ends within 60 s"
  pkill -KILL -f -- "$mine"
else
  ok "a job with a hung rank ends within 60 s ($((SECONDS - start)) s)"
fi
wait $job
rc=$?
check "with a non-zero exit (got $rc) and the watchdog's message" \
  '[[ $rc -ne 0 ]] && grep -q "timeout: .* waiting for .*a peer may have died or hung" hung.err hung.out'
pkill -KILL -f -- "$mine"
finish
