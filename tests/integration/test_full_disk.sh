#!/usr/bin/env bash
# A checkpoint directory on a file system too small for a checkpoint (a 3 MB tmpfs): training stops with exit
# code 1 and a message giving the space needed and free, leaves no temporary file, and does not crash (HDF5
# used to end the process with SIGSEGV when the disk filled under it). Needs to mount a tmpfs (root); skipped
# (exit 77) where that is not allowed.
# Usage: bash test_full_disk.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
mkdir small
if ! mount -t tmpfs -o size=3m tmpfs small 2>/dev/null; then
  echo "cannot mount a tmpfs here; skipped"
  exit 77
fi
trap 'umount "$WORK/small"; rm -rf "$WORK"' EXIT
"$BIN" data synth --out train.bin --tokens 100000 --vocab 256 --seed 1 2>/dev/null
timeout 300 "$BIN" train --config "$REPO/configs/tiny.yaml" data.train=train.bin train.val_every=0 train.steps=3 \
    checkpoint.dir=small/ck checkpoint.every=1 >log.txt 2>&1
rc=$?
check "training ends with exit code 1 (got $rc)" '[ "$rc" -eq 1 ]'
problems=$(unmatched log "$(cat log.txt)" "F:small/ck/step_00000001.h5" "E:needs about [0-9.]+ MB and its file system has [0-9.]+ MB free")
if [ -z "$problems" ]; then ok "the message names the file and both sizes"; else
  bad "the message names the file and both sizes" "$problems"; fi
check "no temporary file is left" '[ -z "$(find small -name "*.tmp")" ]'
finish
