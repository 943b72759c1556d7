#!/usr/bin/env bash
# Data parallelism over MPI ranks (SPEC §9): two ranks with half the micro-batch each give the same
# per-update losses and the same final parameters as one process, to f32 rounding, with and without
# ZeRO-1 optimizer sharding; one file with full tensors is written; a run saved by two ranks resumes on one.
# Needs mpiexec (Open MPI); as root it needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# (launch/test.sh sets them). RATPLUS_TEST_DEVICE=cuda runs it on two GPUs (NCCL).
# Usage: bash test_data_parallel.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_multirank_test "$@"
# No end-of-document token: every micro-batch then has the same number of labels, so a mean of
# micro-batch means is the same whatever the cut.
args=(data.train=train.bin data.val=train.bin data.eos_id=-1 train.steps=12 train.val_every=0 train.log_every=1000
  train.global_batch=8 data.order=random checkpoint.every=6 runtime.device="$DEVICE")
OMP_NUM_THREADS=1 "$BIN" train --config "$CONFIG" "${args[@]}" train.micro_batch=4 checkpoint.dir=one \
  train.metrics_jsonl=one.jsonl 2>one.log
check "one process trains" '[[ -f one/step_00000012.h5 ]]'
mpi 2 "$BIN" train --config "$CONFIG" "${args[@]}" train.micro_batch=2 checkpoint.dir=two \
  train.metrics_jsonl=two.jsonl 2>two.log
rc=$?
check "two ranks train (exit $rc)" '[[ $rc -eq 0 && -f two/step_00000012.h5 ]]'
check "one log line per update, written once" '[[ $(wc -l <two.jsonl) -eq 24 ]]'
check "per-update losses and gradient norms agree with one process" 'same_updates one.jsonl two.jsonl'
check "final parameters and moments agree" 'same_tensors one/step_00000012.h5 two/step_00000012.h5 /' 
# ZeRO-1: optimizer state sharded over the two ranks, the same updates.
mpi 2 "$BIN" train --config "$CONFIG" "${args[@]}" train.micro_batch=2 parallel.zero1=true checkpoint.dir=zero \
  train.metrics_jsonl=zero.jsonl 2>zero.log
check "two ranks with sharded optimizer state (ZeRO-1) train" '[[ -f zero/step_00000012.h5 ]]'
check "with the same per-update losses and norms as one process" 'same_updates one.jsonl zero.jsonl'
check "and the same final parameters and (gathered, full) moments" \
  'same_tensors one/step_00000012.h5 zero/step_00000012.h5 / && same_tensors one/step_00000012.h5 zero/step_00000012.h5 optim' 
# On GPUs in bf16, ZeRO-1 also shards the f32 master weights (AdamW writes the bf16 copy of each rank's range,
# which is then all-gathered): the same updates as plain data parallelism, to bf16 rounding.
if [[ $DEVICE == cuda ]]; then
  for zero1 in false true; do
    mpi 2 "$BIN" train --config "$CONFIG" "${args[@]}" train.micro_batch=2 runtime.precision=bf16 \
      parallel.zero1=$zero1 checkpoint.dir=bf16_$zero1 train.metrics_jsonl=bf16_$zero1.jsonl 2>bf16_$zero1.log
  done
  check "bf16 ZeRO-1 plans 1/2 of the f32 master weights per rank" 'grep -q "master weights (f32, 1/2 with ZeRO-1)" bf16_true.log'
  check "and follows plain bf16 data parallelism" "$PY - <<'PY'
import json
a = [json.loads(l) for l in open('bf16_false.jsonl')]; b = [json.loads(l) for l in open('bf16_true.jsonl')]
assert len(a) == len(b) == 24, (len(a), len(b))
for x, y in zip(a, b):
    assert abs(x['loss'] - y['loss']) <= 2e-3 * abs(x['loss']), (x, y)
PY"
  check "to the same final parameters (gathered from the shards)" \
    'same_tensors bf16_false/step_00000012.h5 bf16_true/step_00000012.h5 model 1e-2'
fi
# A run saved by two ranks continues on one: remove the final checkpoint and finish the last 6 steps alone.
rm two/step_00000012.h5
OMP_NUM_THREADS=1 "$BIN" train --config "$CONFIG" "${args[@]}" train.micro_batch=4 checkpoint.dir=two \
  train.metrics_jsonl=resumed.jsonl 2>resumed.log
check "the two-rank checkpoint resumes on one process" 'grep -q "resuming from two/step_00000006.h5" resumed.log'
check "and ends at the same parameters" 'same_tensors one/step_00000012.h5 two/step_00000012.h5 model' 
finish
