#!/usr/bin/env bash
# launch/slurm.sbatch acts on the exit codes of `ratplus train`, run here by bash with stand-ins for srun (which
# runs the program) and scontrol (which records its arguments): SIGTERM to the ranks before the time limit
# (--signal) stops the run with a checkpoint and exit code 75, and the script requeues the job; a preemption,
# which signals the batch shell as well, does the same; the requeued job resumes and finishes (exit 0, no
# requeue); a stop at train.stop_after (exit 3) and bad input (exit 2) end the job without a requeue.
# Usage: bash test_slurm_launcher.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_test "$@"
mkdir fake
cat >fake/srun <<'EOF'
#!/usr/bin/env bash
while [[ $1 == -* ]]; do shift; done
exec "$@"
EOF
cat >fake/scontrol <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"$SCONTROL_LOG"
EOF
chmod +x fake/srun fake/scontrol
export PATH=$WORK/fake:$PATH SCONTROL_LOG=$WORK/scontrol.log RATPLUS_BIN=$BIN SLURM_JOB_ID=4242 SLURM_CPUS_PER_TASK=1
"$BIN" data synth --out train.bin --tokens 300000 --vocab 256 --seed 1 2>/dev/null
args=(--config "$REPO/configs/tiny.yaml" data.train=train.bin data.val=train.bin train.steps=40 train.val_every=0
  train.log_every=1 train.metrics_jsonl=log.jsonl checkpoint.every=0 runtime.device=cpu checkpoint.dir="$WORK/ckpt")
script=$REPO/launch/slurm.sbatch
check "the job's log goes to the folder it was submitted from (no folder to make first)" \
  'grep -q "^#SBATCH --output=slurm-%x-%j.log$" "$script"'
check "the script asks for SIGTERM before the time limit and may be requeued" \
  'grep -q "^#SBATCH --signal=TERM@" "$script" && grep -q "^#SBATCH --requeue" "$script"'

# job NAME SIGNAL_SHELL ARGS...: the batch script in the background, output in NAME.log; once the run has trained
# a few steps, SIGTERM to its rank (and, with SIGNAL_SHELL=1, to the batch shell); sets RC to its exit code.
job() {
  local name=$1 shell=$2 rank
  shift 2
  rm -f "$SCONTROL_LOG"
  bash "$script" "${args[@]}" "$@" >"$name.out" 2>"$name.log" &
  local pid=$!
  for _ in $(seq 1 1200); do
    [[ $(grep -c "step [0-9]*/" "$name.log" 2>/dev/null) -ge 5 ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  rank=$(ratplus_ranks "checkpoint.dir=$WORK/ckpt")
  [[ $shell == 1 ]] && kill -TERM "$pid"
  [[ -n $rank ]] && kill -TERM $rank
  wait "$pid"
  RC=$?
}

job limit 0
check "SIGTERM to the rank ends the job with exit code 75 (got $RC)" '[[ $RC -eq 75 ]]'
check "after a checkpoint" '[[ -n $(ls ckpt) ]]'
check "and requeues it" 'grep -qx "requeue 4242" scontrol.log'
job preempted 1
check "SIGTERM to the batch shell and the rank: exit code 75 (got $RC)" '[[ $RC -eq 75 ]]'
check "the shell waited for the rank's checkpoint" \
  'grep -q "resuming from" preempted.log && grep -q "stopping at step" preempted.log'
check "and requeued the job" 'grep -qx "requeue 4242" scontrol.log'

rm -f scontrol.log
bash "$script" "${args[@]}" >finished.out 2>finished.log
rc=$?
check "the requeued job resumes and finishes (exit $rc)" \
  '[[ $rc -eq 0 && -f ckpt/step_00000040.h5 ]] && grep -q "resuming from" finished.log'
check "with no requeue" '[[ ! -e scontrol.log ]]'
bash "$script" "${args[@]}" checkpoint.dir="$WORK/planned" train.stop_after=3 >planned.out 2>planned.log
rc=$?
check "a stop at train.stop_after ends the job with exit code 3 (got $rc), no requeue" \
  '[[ $rc -eq 3 && ! -e scontrol.log ]]'
bash "$script" "${args[@]}" train.global_batch=7 >bad.out 2>bad.log
rc=$?
check "bad input ends the job with exit code 2 (got $rc), no requeue" '[[ $rc -eq 2 && ! -e scontrol.log ]]'
finish
