#!/usr/bin/env bash
# `ratplus ckpt inspect FILE [--verify]` (SPEC §7): a fresh inference checkpoint is described and verifies;
# a training checkpoint written by another program (h5py) shows its /train state; a copy with one flipped
# data byte fails --verify naming the damaged dataset; non-HDF5, truncated and missing files exit with 2.
# Usage: bash test_ckpt_inspect.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"

# inspect NAME EXPECTED_EXIT_CODE NEEDLE... -- ARGS...: runs `ratplus ckpt inspect ARGS`; the exit code must
# match and every needle ("F:text" fixed string, "E:regex") must occur in its output (stdout and stderr).
inspect() {
    local name=$1 expected=$2; shift 2
    local needles=()
    while [ "$1" != "--" ]; do needles+=("$1"); shift; done
    shift
    local out rc problems=""
    out=$(timeout 120 "$BIN" ckpt inspect "$@" 2>&1)
    rc=$?
    [ "$rc" -eq "$expected" ] || problems+="exit code $rc, not $expected; "
    problems+=$(unmatched output "$out" "${needles[@]}")
    if [ -z "$problems" ]; then ok "$name"; else bad "$name" "${problems}output was: ${out:0:600}"; fi
}

# --- inputs ----------------------------------------------------------------------------
if ! msg=$("$BIN" init --config "$REPO/configs/tiny.yaml" --out x.h5 2>&1); then
    bad "ratplus init" "$msg"
    finish
fi
# Prints the parameter count, the largest dataset and the file offset of a byte in the middle of its data.
read -r count largest offset < <("$PY" - <<'EOF'
import h5py

with h5py.File("x.h5", "r") as f:
    datasets = []
    f["model"].visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
    largest = max(datasets, key=lambda d: d.size)
    print(sum(d.size for d in datasets), largest.name, largest.id.get_offset() + largest.id.get_storage_size() // 2)
EOF
)
if [ -z "${offset:-}" ]; then
    bad "x.h5 read with h5py ($PY)"
    finish
fi
cp x.h5 damaged.h5
"$PY" - "$offset" <<'EOF' || exit 1
import sys

with open("damaged.h5", "r+b") as f:
    f.seek(int(sys.argv[1]))
    byte = f.read(1)[0]
    f.seek(int(sys.argv[1]))
    f.write(bytes([byte ^ 0x10]))
EOF
"$PY" - <<'EOF' || exit 1
import shutil
import h5py
import numpy as np

shutil.copy("x.h5", "train.h5")
with h5py.File("train.h5", "a") as f:
    f.copy("model", "optim/m")
    f.copy("model", "optim/v")
    train = f.create_group("train")
    for key, value in [("format_version", 1), ("step", 300), ("tokens", 307200), ("optimizer_updates", 600),
                       ("skipped_updates", 2)]:
        train.attrs[key] = np.int64(value)
    train.attrs["seed"] = np.uint64(2**64 - 3)
    train.attrs["loader_positions"] = np.array([300, 301], dtype=np.int64)
    train.attrs["config"] = "model:\n  d_model: 64\n"
with open("x.h5", "rb") as f:
    data = f.read()
with open("cut.h5", "wb") as f:
    f.write(data[:len(data) // 2])
with open("notes.h5", "wb") as f:
    f.write(b"this is not an HDF5 file\n" * 40)
EOF

# --- a good inference checkpoint -------------------------------------------------------
inspect "inference checkpoint is described and verified" 0 \
    F:x.h5 F:inference "E:(^|[^0-9])${count}([^0-9]|$)" F:embed/weight F:verified -- x.h5 --verify
inspect "without --verify nothing is claimed verified" 0 F:inference -- x.h5
if "$BIN" ckpt inspect x.h5 2>&1 | grep -q verified; then
    bad "without --verify no verification is reported" "output mentions 'verified'"
else
    ok "without --verify no verification is reported"
fi

# --- a training checkpoint -------------------------------------------------------------
inspect "training checkpoint shows its /train state" 0 \
    F:training F:307200 F:18446744073709551613 "E:300.*301" "E:(^|[^0-9])600([^0-9]|$)" F:verified \
    -- train.h5 --verify

# --- bad files -------------------------------------------------------------------------
inspect "flipped data byte is reported as damage naming the dataset" 2 F:damaged "F:$largest" -- damaged.h5 --verify
inspect "not an HDF5 file" 2 F:notes.h5 "F:not an HDF5 file" -- notes.h5
inspect "truncated file" 2 F:cut.h5 F:truncated -- cut.h5 --verify
inspect "missing file" 2 F:absent.h5 -- absent.h5
inspect "no file given" 2 -- --verify

finish
