#!/usr/bin/env bash
# The checkpoint directory of `ratplus train`: a second run on a directory that a running one holds ends with
# exit code 2 (on every rank of an MPI run), naming the directory and the holder's pid and host; the lock of
# a process that died blocks nothing; a directory that cannot be created or written (under /proc, a file in
# the way, a name too long, a read-only or a full file system) ends the run with exit code 2 naming
# checkpoint.dir and the system's reason, before any training. Root ignores permissions, so the read-only and
# full cases are tmpfs mounts (skipped where mounting is not allowed).
# Usage: bash test_checkpoint_dir.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
start_test "$@"
export OMP_NUM_THREADS=1
"$BIN" data synth --out train.bin --tokens 100000 --vocab 256 --seed 1 2>/dev/null
args=(--config "$REPO/configs/tiny.yaml" data.train=train.bin data.val=train.bin train.val_every=0
  train.log_every=1 train.metrics_jsonl=log.jsonl checkpoint.every=0 runtime.device=cpu)

# --- two runs on one directory
"$BIN" train "${args[@]}" train.steps=100000 checkpoint.dir=shared 2>first.log &
first=$!
for _ in $(seq 1 1200); do
  grep -q "step 1/" first.log 2>/dev/null && break
  sleep 0.05
done
check "the first run trains" 'grep -q "step 1/" first.log'
timeout 60 "$BIN" train "${args[@]}" train.steps=100000 checkpoint.dir=shared train.metrics_jsonl=second.jsonl \
  >/dev/null 2>second.log
rc=$?
problems=$(unmatched stderr "$(cat second.log)" "F:checkpoint.dir" "F:'shared'" "F:process $first on host $(hostname)")
[[ $rc -eq 2 ]] || problems+="exit code $rc, not 2; "
[[ ! -e second.jsonl ]] || problems+="it trained; "
if [[ -z $problems ]]; then ok "a second run on the directory ends with exit code 2 naming the holder"; else
  bad "a second run on the directory ends with exit code 2 naming the holder" "$problems$(tail -c 400 second.log)"; fi
mpi 2 --timeout 120 "$BIN" train "${args[@]}" train.steps=100000 checkpoint.dir=shared train.metrics_jsonl=ranks.jsonl \
  train.micro_batch=4 >/dev/null 2>ranks.log
rc=$?
check "so does a run of two MPI ranks (exit $rc), rank 0 naming the holder" \
  '[[ $rc -eq 2 && ! -e ranks.jsonl ]] && grep -q "process $first on host" ranks.log'
check "the first run goes on" 'kill -0 $first'
kill -KILL $first
wait $first 2>/dev/null
check "the dead run's lock file stays behind" '[[ -s shared/.ratplus.lock ]]'
timeout 300 "$BIN" train "${args[@]}" train.steps=3 checkpoint.dir=shared 2>third.log
rc=$?
check "and blocks nothing: the next run finishes (exit $rc)" '[[ $rc -eq 0 && -f shared/step_00000003.h5 ]]'
check "the lock file names its last holder" 'grep -q "on host $(hostname)" shared/.ratplus.lock'

# --- directories that cannot be used
# expect_unusable NAME DIR NEEDLE...: a run with checkpoint.dir=DIR ends with exit code 2 before training, its
# message naming checkpoint.dir and each NEEDLE ("F:text" or "E:regex"), in fewer than 1000 characters.
expect_unusable() {
  local name=$1 dir=$2 rc problems
  shift 2
  rm -f log.jsonl
  timeout 120 "$BIN" train "${args[@]}" train.steps=3 checkpoint.dir="$dir" >/dev/null 2>unusable.log
  rc=$?
  problems=$(unmatched stderr "$(cat unusable.log)" "F:checkpoint.dir" "$@")
  [[ $rc -eq 2 ]] || problems+="exit code $rc, not 2; "
  [[ ! -e log.jsonl ]] || problems+="it trained; "
  local length
  length=$(tail -n 1 unusable.log | wc -c)
  [[ $length -lt 1000 ]] || problems+="a message of $length characters; "
  if [[ -z $problems ]]; then ok "$name"; else bad "$name" "$problems$(tail -c 400 unusable.log)"; fi
}
expect_unusable "a directory under /proc" /proc/x "F:'/proc/x'" "F:No such file or directory"
touch afile
expect_unusable "a directory below a file" afile/ck "F:'afile/ck'" "F:Not a directory"
expect_unusable "a file where the directory should be" afile "F:'afile'" "F:Not a directory"
expect_unusable "a name too long" "$(printf 'd%.0s' $(seq 1 300))" "F:File name too long"
expect_unusable "a name of 100000 characters" "$(head -c 100000 /dev/zero | tr '\0' d)" "F:File name too long"

mkdir ro full
if ! mount -t tmpfs -o ro,size=1m tmpfs ro 2>/dev/null; then
  echo "cannot mount a tmpfs here; the read-only and full file systems are skipped"
  finish
fi
trap 'umount "$WORK/ro" "$WORK/full" 2>/dev/null; rm -rf "$WORK"' EXIT
expect_unusable "a read-only file system" ro "F:'ro'" "F:Read-only file system"
expect_unusable "a directory to create on a read-only file system" ro/ck "F:'ro/ck'" "F:Read-only file system"
mount -t tmpfs -o size=1m tmpfs full
dd if=/dev/zero of=full/filler bs=64k 2>/dev/null
expect_unusable "a full file system" full/ck "F:'full/ck'" "F:No space left on device"
finish
