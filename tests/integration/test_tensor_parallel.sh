#!/usr/bin/env bash
# Tensor parallelism (Megatron layout) and layouts mixed with data parallelism and ZeRO-1, over MPI ranks:
# tp = 2 and tp = 2 × dp = 2 (with ZeRO-1 and gradient buckets small enough that several run during the
# backward) give one process's per-update losses and gradient norms and its final parameters and moments, to
# f32 rounding; checkpoints written in one layout resume in another; an untied head, the attention-only
# model and a per-head hybrid pattern split the same way; layouts that cannot work are refused with exit 2.
# Runs on the CPU (MPI) by default; RATPLUS_TEST_DEVICE=cuda runs it on the GPUs (NCCL; ranks beyond the
# number of GPUs share them, and groups of ranks that share a GPU fall back to MPI).
# Usage: bash test_tensor_parallel.sh /path/to/ratplus
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_multirank_test "$@"
# No end-of-document token: every micro-batch then has the same number of labels, so a mean of
# micro-batch means is the same whatever the cut.
args=(data.train=train.bin data.val=train.bin data.eos_id=-1 train.steps=12 train.val_every=0 train.log_every=1000
  train.global_batch=8 data.order=random checkpoint.every=6 checkpoint.keep=5 runtime.device="$DEVICE"
  runtime.precision=fp32)
train() { local dir=$1; shift; "$@" "$BIN" train --config "$CONFIG" "${args[@]}" checkpoint.dir="$dir" \
  train.metrics_jsonl="$dir.jsonl" "${extra[@]}" 2>"$dir.log"; }

extra=(train.micro_batch=4)
train one env
check "one process trains" '[[ -f one/step_00000012.h5 ]]'

extra=(train.micro_batch=4 parallel.tp=2)
train tp2 mpi 2
check "tp=2 trains on two ranks (exit $?)" '[[ -f tp2/step_00000012.h5 ]]'
check "tp=2: one log line per update" '[[ $(wc -l <tp2.jsonl) -eq 24 ]]'
check "tp=2: per-update losses and gradient norms of one process" 'same_updates one.jsonl tp2.jsonl'
check "tp=2: the checkpoint holds the full tensors of one process" 'same_tensors one/step_00000012.h5 tp2/step_00000012.h5 /'

extra=(train.micro_batch=2 parallel.tp=2 parallel.zero1=true parallel.bucket_mb=0.01)
train grid mpi 4
check "tp=2 x dp=2 with ZeRO-1 and 0.01 MiB buckets trains on four ranks" '[[ -f grid/step_00000012.h5 ]]'
check "tp=2 x dp=2: per-update losses and gradient norms of one process" 'same_updates one.jsonl grid.jsonl'
check "tp=2 x dp=2: final parameters and moments of one process" 'same_tensors one/step_00000012.h5 grid/step_00000012.h5 /'

# Resume across layouts: the tp=2 x dp=2 run continues as tp=1 x dp=2, the one-process run as tp=2.
rm grid/step_00000012.h5 one/step_00000012.h5
cp -r one one_resumed && cp -r grid grid_resumed && rm -f one_resumed.jsonl grid_resumed.jsonl
extra=(train.micro_batch=4)
train grid_resumed mpi 2
check "a tp=2 x dp=2 checkpoint resumes as dp=2" 'grep -q "resuming from grid_resumed/step_00000006.h5" grid_resumed.log'
extra=(train.micro_batch=4 parallel.tp=2)
train one_resumed mpi 2
check "a one-process checkpoint resumes as tp=2" 'grep -q "resuming from one_resumed/step_00000006.h5" one_resumed.log'
check "both end where one process does" \
  'same_tensors tp2/step_00000012.h5 grid_resumed/step_00000012.h5 / && same_tensors tp2/step_00000012.h5 one_resumed/step_00000012.h5 /'
check "and log the updates one process logs" \
  '[[ $(wc -l <grid_resumed.jsonl) -eq 12 ]] && tail -12 tp2.jsonl >tail.jsonl && same_updates tail.jsonl grid_resumed.jsonl'

# On GPUs in bf16 the activation sums of tensor parallelism run in bf16 too: the same updates to bf16 rounding.
if [[ $DEVICE == cuda ]]; then
  extra=(train.micro_batch=4 runtime.precision=bf16)
  train bf16_one env
  extra=(train.micro_batch=4 runtime.precision=bf16 parallel.tp=2)
  train bf16_tp2 mpi 2
  check "bf16: tp=2 follows one process (first updates to 2e-3, all to 1e-2)" "$PY - <<'PY'
import json
a = [json.loads(l) for l in open('bf16_one.jsonl')]; b = [json.loads(l) for l in open('bf16_tp2.jsonl')]
assert len(a) == len(b) == 24, (len(a), len(b))
for i, (x, y) in enumerate(zip(a, b)):
    assert abs(x['loss'] - y['loss']) <= (2e-3 if i < 2 else 1e-2) * abs(x['loss']), (i, x, y)
PY"
fi

# Other shapes of the model split the same way: untied head, attention-only W_in (4 blocks), and an adapt
# pass under a per-head hybrid pattern (each rank runs its own heads' patterns).
args+=(train.steps=4 checkpoint.every=0 model.tie_embeddings=false train.objective=adapt
  "train.pattern=layers=heads=1:dense+3:dilated:D=8|heads=2:local:W=16+2:dense")
for recurrence in true false; do
  extra=(train.micro_batch=4 model.recurrence=$recurrence)
  train "shape1_$recurrence" env
  extra=(train.micro_batch=4 model.recurrence=$recurrence parallel.tp=2)
  train "shape2_$recurrence" mpi 2
  check "untied, recurrence $recurrence, hybrid heads: tp=2 matches one process" \
    "same_updates shape1_$recurrence.jsonl shape2_$recurrence.jsonl && same_tensors shape1_$recurrence/step_00000004.h5 shape2_$recurrence/step_00000004.h5 /"
done

# Layouts that cannot work: exit 2 with the reason, nothing written.
extra=(parallel.tp=3)
train bad_divide mpi 2
rc=$?
check "tp=3 on two ranks is refused (exit $rc)" '[[ $rc -eq 2 ]] && grep -q "parallel.tp: 3 does not divide the 2 ranks" bad_divide.log && [[ ! -e bad_divide ]]'
extra=(parallel.tp=2 model.n_heads=1)
train bad_heads mpi 2
rc=$?
check "tp=2 with one head is refused (exit $rc)" '[[ $rc -eq 2 ]] && grep -q "model.n_heads 1 is not a multiple of parallel.tp 2" bad_heads.log'
finish
