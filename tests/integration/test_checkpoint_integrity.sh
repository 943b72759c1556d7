#!/usr/bin/env bash
# Checkpoint integrity (SPEC §7) through the commands: damage is refused by `ckpt inspect --verify`, `eval`
# and `train` alike (exit 2, naming the file and the dataset): one flipped bit in a tensor's data, a zeroed
# tensor and one whose storage was never allocated (its CRC-32 kept); in a file of the older chunked layout,
# a chunk index that lost its entry (one flipped bit; HDF5 would read the tensor as zeros); a dataset stored
# without a checksum among checksummed ones, NaN written with a valid checksum, a float16 tensor, a /train@step
# that contradicts the file name (train falls back to the previous checkpoint). A file written without any
# checksum (h5py's default) evaluates but is never called verified; finite weights whose loss overflows make
# eval exit 1.
# Usage: bash test_checkpoint_integrity.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"

# expect NAME EXPECTED_EXIT_CODE NEEDLE... -- ARGS...: runs `ratplus ARGS`; the exit code must match, every
# needle ("F:text" fixed string, "E:regex") must occur in its output (stdout and stderr), and a failed command
# must leave no out.json behind.
expect() {
    local name=$1 expected=$2; shift 2
    local needles=()
    while [ "$1" != "--" ]; do needles+=("$1"); shift; done
    shift
    local out rc problems=""
    rm -f out.json
    out=$(timeout 300 "$BIN" "$@" 2>&1)
    rc=$?
    [ "$rc" -eq "$expected" ] || problems+="exit code $rc, not $expected; "
    [ "$rc" -eq 0 ] || [ ! -e out.json ] || problems+="out.json written; "
    problems+=$(unmatched output "$out" "${needles[@]}")
    if [ -z "$problems" ]; then ok "$name"; else bad "$name" "${problems}output was: ${out:0:600}"; fi
}

# refused NAME FILE NEEDLE...: `ckpt inspect FILE --verify` and `eval` of FILE both exit 2 naming FILE.
refused() {
    local name=$1 file=$2; shift 2
    expect "$name: ckpt inspect --verify" 2 "F:$file" "$@" -- ckpt inspect "$file" --verify
    expect "$name: eval" 2 "F:$file" "$@" -- \
        eval --checkpoint "$file" --data tokens.bin --seq-len 32 --batches 2 --pattern dense --json out.json
}

# --- inputs ----------------------------------------------------------------------------
if ! msg=$("$BIN" init --config "$REPO/configs/tiny.yaml" --out x.h5 2>&1); then
    bad "ratplus init" "$msg"
    finish
fi
"$BIN" data synth --out tokens.bin --tokens 300000 --vocab 256 --seed 1 2>/dev/null
"$PY" - <<'EOF' || exit 1
import shutil
import struct
import zlib

import h5py
import numpy as np

def edited(name, edit):
    shutil.copy("x.h5", name)
    with h5py.File(name, "a") as f:
        edit(f["model"])

def replace(group, name, **how):
    data = group[name][()]
    del group[name]
    group.create_dataset(name, data=data, **how)

def rewrite(group, name, data):  # new values with a valid CRC-32
    group[name][...] = data
    group[name].attrs["crc32"] = np.uint32(zlib.crc32(group[name][()].astype("<f4").tobytes()))

# The stored CRC-32 is zlib's over the dataset's bytes.
with h5py.File("x.h5", "r") as f:
    d = f["model/embed/weight"]
    assert d.attrs["crc32"] == zlib.crc32(d[()].astype("<f4").tobytes())
    data_offset = d.id.get_offset()

# One flipped bit in the data of /model/embed/weight.
data = bytearray(open("x.h5", "rb").read())
data[data_offset + 100] ^= 4
open("bitflip.h5", "wb").write(bytes(data))
edited("zeroed.h5", lambda g: g["embed/weight"].write_direct(np.zeros(g["embed/weight"].shape, np.float32)))

def unallocated(group):  # the dataset exists, with its checksum, but its data was never written
    crc = group["embed/weight"].attrs["crc32"]
    shape = group["embed/weight"].shape
    del group["embed/weight"]
    group.create_dataset("embed/weight", shape=shape, dtype="<f4").attrs["crc32"] = crc
edited("unallocated.h5", unallocated)

# The older layout: every dataset in chunks with Fletcher-32 checksums (one chunk each).
with h5py.File("x.h5", "r") as f, h5py.File("old.h5", "w") as out:
    out.create_group("model").attrs["config"] = f["model"].attrs["config"]
    names = []
    f["model"].visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    for name in names:
        out["model"].create_dataset(name, data=f["model"][name][()], chunks=f["model"][name].shape,
                                    fletcher32=True)

# One flipped bit in old.h5: the entry count of the chunk index (a v1 B-tree node, "TREE") of
# /model/embed/weight goes from 1 to 0, so HDF5 finds no chunk and reads fill values without checking any checksum.
with h5py.File("old.h5", "r") as f:
    chunk_address = f["model/embed/weight"].id.get_chunk_info(0).byte_offset
data = bytearray(open("old.h5", "rb").read())
nodes = []
at = data.find(b"TREE")
while at >= 0:
    if data[at + 4] == 1 and struct.unpack_from("<Q", data, at + 56)[0] == chunk_address:  # chunk node, child 0
        nodes.append(at)
    at = data.find(b"TREE", at + 1)
assert len(nodes) == 1 and struct.unpack_from("<H", data, nodes[0] + 6)[0] == 1, nodes
data[nodes[0] + 6] ^= 1
open("flipped.h5", "wb").write(bytes(data))
with h5py.File("flipped.h5", "r") as f:
    assert not f["model/embed/weight"][()].any(), "the flipped file should read as zeros"

edited("unchecked.h5", lambda g: replace(g, "layers/0/ffn/fc1/weight"))
edited("half.h5", lambda g: replace(g, "layers/0/ffn/fc2/weight", dtype=np.float16, chunks=True, fletcher32=True))

def put_nan(group):
    values = group["layers/1/attn/out_proj/weight"][()]
    values[3, 5] = np.nan
    rewrite(group, "layers/1/attn/out_proj/weight", values)
edited("nan.h5", put_nan)

def overflow(group):  # finite, but the logits overflow float32
    rewrite(group, "embed/weight", np.where(group["embed/weight"][()] < 0, -3e38, 3e38).astype(np.float32))
edited("huge.h5", overflow)

with h5py.File("x.h5", "r") as f, h5py.File("foreign.h5", "w") as out:
    model = out.create_group("model")
    model.attrs["config"] = f["model"].attrs["config"]
    names = []
    f["model"].visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    for name in names:
        model.create_dataset(name, data=f["model"][name][()])  # contiguous, no filters
EOF

# --- an intact checkpoint --------------------------------------------------------------
expect "control: intact checkpoint: ckpt inspect --verify" 0 F:verified -- ckpt inspect x.h5 --verify
expect "control: intact checkpoint: eval" 0 F:dense -- \
    eval --checkpoint x.h5 --data tokens.bin --seq-len 32 --batches 2 --pattern dense --json out.json

expect "control: older chunked layout: ckpt inspect --verify" 0 F:verified -- ckpt inspect old.h5 --verify
expect "control: older chunked layout: eval" 0 F:dense -- \
    eval --checkpoint old.h5 --data tokens.bin --seq-len 32 --batches 2 --pattern dense --json out.json

# --- damage ----------------------------------------------------------------------------
refused "one flipped bit in a tensor's data" bitflip.h5 F:/model/embed/weight "F:checksum mismatch" F:damaged
refused "a zeroed tensor" zeroed.h5 F:/model/embed/weight "F:checksum mismatch" F:damaged
refused "a tensor whose storage was never allocated" unallocated.h5 F:/model/embed/weight "F:0 of 1 chunks" F:damaged
refused "older layout: chunk index lost its entry (one flipped bit)" flipped.h5 F:/model/embed/weight \
    "F:0 of 1 chunks" F:damaged
refused "dataset without a checksum among checksummed ones" unchecked.h5 \
    F:/model/layers/0/ffn/fc1/weight F:checksum F:damaged
refused "NaN with a valid checksum" nan.h5 F:/model/layers/1/attn/out_proj/weight F:non-finite F:nan
refused "float16 tensor" half.h5 F:/model/layers/0/ffn/fc2/weight F:float16 F:float32

# --- a file written without checksums ----------------------------------------------------
expect "file without checksums: eval" 0 F:dense -- \
    eval --checkpoint foreign.h5 --data tokens.bin --seq-len 32 --batches 2 --pattern dense --json out.json
expect "file without checksums: --verify does not vouch for it" 2 F:foreign.h5 "F:cannot be verified" -- \
    ckpt inspect foreign.h5 --verify
if "$BIN" ckpt inspect foreign.h5 --verify 2>&1 | grep -q "datasets verified"; then
    bad "file without checksums: nothing is reported verified" "output says 'datasets verified'"
else
    ok "file without checksums: nothing is reported verified"
fi

# --- finite weights, overflowing loss ----------------------------------------------------
expect "overflowing weights: --verify passes (they are finite)" 0 F:verified -- ckpt inspect huge.h5 --verify
expect "overflowing weights: eval exits 1 naming the pattern and the loss" 1 F:huge.h5 F:dense F:nan F:overflow -- \
    eval --checkpoint huge.h5 --data tokens.bin --seq-len 32 --batches 2 --pattern dense --json out.json

# --- a training checkpoint whose step contradicts its name --------------------------------
train=(train --config "$REPO/configs/tiny.yaml" data.train=tokens.bin data.val=tokens.bin train.steps=8
    data.seq_len=32 train.val_every=0 train.metrics_jsonl=metrics.jsonl checkpoint.every=4 checkpoint.keep=2 checkpoint.dir=ck)
expect "training writes two checkpoints" 0 -- "${train[@]}"
"$PY" - <<'EOF' || exit 1
import h5py
import numpy as np

with h5py.File("ck/step_00000008.h5", "a") as f:
    f["train"].attrs["step"] = np.int64(99999)
EOF
expect "step contradicting the file name: ckpt inspect" 2 F:ck/step_00000008.h5 F:/train@step F:99999 "F:step 8" -- \
    ckpt inspect ck/step_00000008.h5
expect "step contradicting the file name: train resumes from the previous checkpoint" 0 \
    "F:not resuming from ck/step_00000008.h5" F:99999 "F:resuming from ck/step_00000004.h5 at step 4" -- "${train[@]}"

finish
