#!/usr/bin/env bash
# A checkpoint directory on a file system too small: with no room for one checkpoint (a 3 MB tmpfs) the run
# is refused before it trains (exit 2, naming checkpoint.dir and both sizes); with room for one but not two
# (a tmpfs of 1.5 checkpoints), the second write fails in the background and the run ends at the next
# checkpoint with exit code 1 and a message naming the file and giving both sizes, keeps the first checkpoint,
# leaves no temporary file, and does not crash (HDF5 used to end the process with SIGSEGV when the
# disk filled under it). Needs to mount a tmpfs (root); skipped (exit 77) where that is not allowed.
# Usage: bash test_full_disk.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
mkdir small
if ! mount -t tmpfs -o size=3m tmpfs small 2>/dev/null; then
  echo "cannot mount a tmpfs here; skipped"
  exit 77
fi
mkdir roomy
trap 'umount "$WORK/small" "$WORK/roomy" 2>/dev/null; rm -rf "$WORK"' EXIT
"$BIN" data synth --out train.bin --tokens 100000 --vocab 256 --seed 1 2>/dev/null
train() {  # DIR
  timeout 300 "$BIN" train --config "$REPO/configs/tiny.yaml" data.train=train.bin train.val_every=0 train.steps=3 \
      checkpoint.dir="$1" checkpoint.every=1 >log.txt 2>&1
}

train small/ck
rc=$?
check "with no room for one checkpoint the run is refused with exit code 2 (got $rc)" '[ "$rc" -eq 2 ]'
problems=$(unmatched log "$(cat log.txt)" "F:checkpoint.dir" "F:small/ck" \
    "E:a checkpoint needs about [0-9.]+ MB and its file system has [0-9.]+ MB free")
if [ -z "$problems" ]; then ok "the message names checkpoint.dir and both sizes"; else
  bad "the message names checkpoint.dir and both sizes" "$problems"; fi
check "it trained no step" '! grep -qE "training [0-9]+ parameters|step [0-9]+\/" log.txt'

needed=$(grep -oE 'needs about [0-9.]+ MB' log.txt | grep -oE '[0-9.]+')
size_kb=$(awk -v mb="$needed" 'BEGIN { printf "%d", mb * 1000 * 1.5 }')
mount -t tmpfs -o size=${size_kb}k tmpfs roomy
train roomy/ck
rc=$?
check "with room for one checkpoint but not two, training ends with exit code 1 (got $rc)" '[ "$rc" -eq 1 ]'
problems=$(unmatched log "$(cat log.txt)" "F:roomy/ck/step_00000002.h5" \
    "E:needs about [0-9.]+ MB and its file system has [0-9.]+ MB free")
if [ -z "$problems" ]; then ok "the message names the file and both sizes"; else
  bad "the message names the file and both sizes" "$problems"; fi
check "the first checkpoint is there" '[ -f roomy/ck/step_00000001.h5 ]'
check "no temporary file is left" '[ -z "$(find small roomy -name "*.tmp")" ]'
finish
