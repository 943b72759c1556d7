#!/usr/bin/env bash
# Bad input to the ratplus CLI (SPEC §5, §7, §10): every case must exit with code 2, print a
# message on stderr naming the culprit, and leave no output file behind.
# Usage: bash test_bad_input.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
REF=$REPO/tools/ratplus_reference.py

# expect_bad NAME NEEDLE... -- COMMAND...
# A needle is "F:text" (fixed string) or "E:regex"; each must occur in stderr.
expect_bad() {
    local name=$1; shift
    local needles=()
    while [ "$1" != "--" ]; do needles+=("$1"); shift; done
    shift
    local before after rc msg problems=""
    before=$(ls -A | sort)
    timeout 120 "$@" >stdout.txt 2>stderr.txt
    rc=$?
    msg=$(cat stderr.txt)
    rm -f stdout.txt stderr.txt
    after=$(ls -A | sort)
    [ "$rc" -eq 2 ] || problems+="exit code $rc, not 2; "
    [ -n "$msg" ] || problems+="nothing on stderr; "
    problems+=$(unmatched stderr "$msg" "${needles[@]}")
    local left
    left=$(comm -13 <(echo "$before") <(echo "$after") | tr '\n' ' ')
    if [ -n "$left" ]; then
        problems+="left behind: $left; "
        comm -13 <(echo "$before") <(echo "$after") | while read -r f; do rm -rf -- "$f"; done
    fi
    if [ -z "$problems" ]; then ok "$name"; else bad "$name" "${problems}stderr was: ${msg:0:400}"; fi
}

# expect_ok NAME COMMAND...: a control case that must succeed.
expect_ok() {
    local name=$1; shift
    local msg
    if msg=$(timeout 300 "$@" 2>&1 >/dev/null); then ok "$name"; else bad "$name" "exit $?: ${msg:0:400}"; fi
}

# --- inputs ----------------------------------------------------------------------------
cat >good.yaml <<'EOF'
model:
  vocab_size: 97
  d_model: 32
  n_layers: 2
  n_heads: 4
  d_ffn: 64
EOF
printf 'model:\n  vocab_size: 97\n  d_model: 32\n  n_layers: 2\n  n_heads: 4\n  bogus_key: 3\n  d_ffn: 64\n' >bad.yaml
printf 'model:\n  vocab_size: 97\n  d_model: 30\n  n_layers: 2\n  n_heads: 4\n  d_ffn: 64\n' >indivisible.yaml
printf 'model:\n  vocab_size: 97\n  d_model: abc\n  n_layers: 2\n  n_heads: 4\n  d_ffn: 64\n' >badtype.yaml
printf 'model:\n  vocab_size: -5\n  d_model: 32\n  n_layers: 2\n  n_heads: 4\n  d_ffn: 64\n' >badrange.yaml
printf 'model:\n  vocab_size: 97\n  d_model: 32\n  n_layers: 2\n  n_heads: 4\n  d_ffn: 64\nmodle:\n  x: 1\n' >badsection.yaml

"$PY" "$REF" init --out ck.h5 vocab_size=97 d_model=32 n_layers=2 n_heads=4 d_ffn=64 || exit 1
"$PY" - <<'EOF' || exit 1
import shutil
import h5py
import numpy as np

def shard(path, tokens, count=None, magic=20240520, version=1):
    header = np.zeros(256, dtype="<i4")
    header[:3] = [magic, version, len(tokens) if count is None else count]
    with open(path, "wb") as f:
        f.write(header.tobytes() + np.asarray(tokens, dtype="<u2").tobytes())

rng = np.random.default_rng(7)
tokens = rng.integers(0, 97, size=100)
shard("shard.bin", tokens)                         # 100 tokens: 12 windows of 8
shard("truncated.bin", tokens[:90], count=100)     # header says 100, file holds 90
shard("badversion.bin", tokens, version=7)         # uint16 magic with version 7
big = tokens.copy()
big[11] = 300                                      # token offset 11, byte offset 1024 + 22 = 1046
shard("bigtoken.bin", big)

with open("noth5.h5", "wb") as f:
    f.write(b"this is not an HDF5 file\n" * 40)
shutil.copy("ck.h5", "missing.h5")
with h5py.File("missing.h5", "a") as f:
    del f["model/layers/1/ffn/fc2/weight"]
shutil.copy("ck.h5", "badshape.h5")
with h5py.File("badshape.h5", "a") as f:
    del f["model/layers/0/ffn/fc1/weight"]
    f["model"].create_dataset("layers/0/ffn/fc1/weight", data=np.zeros((63, 32), np.float32))
shutil.copy("ck.h5", "noconfig.h5")
with h5py.File("noconfig.h5", "a") as f:
    del f["model"].attrs["config"]
with open("ck.h5", "rb") as f:
    data = f.read()
with open("cut.h5", "wb") as f:
    f.write(data[:len(data) // 2])
EOF

EVAL=(eval --checkpoint ck.h5 --data shard.bin --seq-len 8 --batches 2 --json out.json)

# --- controls: the same inputs, done right, succeed --------------------------------------
expect_ok "control: init with good.yaml" "$BIN" init --config good.yaml --out ok.h5
[ -f ok.h5 ] && ok "control: init wrote ok.h5" || bad "control: init wrote ok.h5" "file absent"
rm -f ok.h5
expect_ok "control: eval of 12 windows (all the data holds)" \
    "$BIN" eval --checkpoint ck.h5 --data shard.bin --seq-len 8 --batches 12 --pattern dense --json ok.json
rm -f ok.json

# --- config ----------------------------------------------------------------------------
expect_bad "config with an unknown key names file and key" F:bad.yaml F:bogus_key -- \
    "$BIN" init --config bad.yaml --out x.h5
expect_bad "config with an unknown key names the line (6)" 'E:(^|[^0-9])6([^0-9]|$)' -- \
    "$BIN" init --config bad.yaml --out x.h5
expect_bad "config with an unknown section" F:modle -- \
    "$BIN" init --config badsection.yaml --out x.h5
expect_bad "d_model not divisible by n_heads" 'E:d_model|n_heads' -- \
    "$BIN" init --config indivisible.yaml --out x.h5
expect_bad "config value of the wrong type" F:d_model -- \
    "$BIN" init --config badtype.yaml --out x.h5
expect_bad "config value out of range" F:vocab_size -- \
    "$BIN" init --config badrange.yaml --out x.h5
expect_bad "missing config file" F:no_such_config.yaml -- \
    "$BIN" init --config no_such_config.yaml --out x.h5
expect_bad "override with an unknown key" F:nope -- \
    "$BIN" init --config good.yaml --out x.h5 model.nope=3
expect_bad "override with an unknown section" F:nosection -- \
    "$BIN" init --config good.yaml --out x.h5 nosection.d_model=3
expect_bad "override with a value of the wrong type" F:d_model -- \
    "$BIN" init --config good.yaml --out x.h5 model.d_model=abc
expect_bad "a bad train.pattern under the joint objective (which does not use it) is still named" \
    F:train.pattern F:sparse -- "$BIN" train --config good.yaml train.pattern=sparse:X=1 checkpoint.dir=ck-unused
expect_bad "a top-k train.pattern is refused: top-k is for inference" \
    F:train.pattern F:topk:B=4,K=2 F:inference -- \
    "$BIN" train --config good.yaml train.objective=adapt train.pattern=topk:B=4,K=2 checkpoint.dir=ck-unused
expect_bad "override without '='" F:model.d_model -- \
    "$BIN" init --config good.yaml --out x.h5 model.d_model

# --- data ------------------------------------------------------------------------------
expect_bad "a malformed top-k pattern names its text" F:topk:B=0,K=2 F:B -- \
    "$BIN" eval --checkpoint ck.h5 --data shard.bin --seq-len 8 --batches 2 --pattern topk:B=0,K=2 --json out.json
expect_bad "a top-k pattern with an unknown score names it" F:topk:score=best F:best -- \
    "$BIN" eval --checkpoint ck.h5 --data shard.bin --seq-len 8 --batches 2 --pattern topk:score=best --json out.json
expect_bad "truncated shard" F:truncated.bin -- \
    "$BIN" eval --checkpoint ck.h5 --data truncated.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "llm.c header with a wrong version" F:badversion.bin -- \
    "$BIN" eval --checkpoint ck.h5 --data badversion.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "token id >= vocab names the shard and the offset (11 / byte 1046)" \
    F:bigtoken.bin 'E:(^|[^0-9])(11|1046)([^0-9]|$)' -- \
    "$BIN" eval --checkpoint ck.h5 --data bigtoken.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "missing data file" F:no_such_shard.bin -- \
    "$BIN" eval --checkpoint ck.h5 --data no_such_shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json
mkfifo fifo.bin
expect_bad "a FIFO given as a data file is refused, not waited on" F:fifo.bin 'F:not a regular file' -- \
    "$BIN" eval --checkpoint ck.h5 --data fifo.bin --seq-len 8 --batches 2 --pattern dense --json out.json
rm -f fifo.bin
expect_bad "data synth beyond the llm.c header's 2^31 - 1 tokens is refused before generating" F:--tokens -- \
    timeout 10 "$BIN" data synth --out big.bin --tokens 2147483648
expect_bad "more batches than the data holds" 'E:batches|windows|tokens' -- \
    "$BIN" eval --checkpoint ck.h5 --data shard.bin --seq-len 8 --batches 13 --pattern dense --json out.json
expect_bad "seq-len 0" F:seq-len -- \
    "$BIN" eval --checkpoint ck.h5 --data shard.bin --seq-len 0 --batches 2 --pattern dense --json out.json
expect_bad "an unknown precision" F:--precision -- \
    "$BIN" eval --checkpoint ck.h5 --data shard.bin --seq-len 8 --batches 2 --pattern dense --precision fp16 --json out.json

# --- checkpoints -----------------------------------------------------------------------
expect_bad "checkpoint that is not HDF5" F:noth5.h5 -- \
    "$BIN" eval --checkpoint noth5.h5 --data shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "truncated checkpoint" F:cut.h5 -- \
    "$BIN" eval --checkpoint cut.h5 --data shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "missing checkpoint file" F:no_such_ck.h5 -- \
    "$BIN" eval --checkpoint no_such_ck.h5 --data shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "checkpoint missing a dataset names it" F:layers/1/ffn/fc2/weight -- \
    "$BIN" eval --checkpoint missing.h5 --data shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "checkpoint dataset with a wrong shape names it" F:layers/0/ffn/fc1/weight -- \
    "$BIN" eval --checkpoint badshape.h5 --data shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "checkpoint without the config attribute" F:config -- \
    "$BIN" eval --checkpoint noconfig.h5 --data shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json

# --- patterns --------------------------------------------------------------------------
for p in 'dilated:D=0' 'bogus' 'layers=dense|dense|dense' 'heads=2:dense+1:dense' \
         'dilated:D=4,X=1' 'local:W=-1' 'dilated:W=3' 'layers=dense*3'; do
    expect_bad "bad pattern $p" "F:$p" -- "$BIN" "${EVAL[@]}" --pattern "$p"
done
expect_bad "bad pattern after a good one" F:bogus2 -- "$BIN" "${EVAL[@]}" --pattern dense --pattern bogus2

# --- command line ----------------------------------------------------------------------
expect_bad "unknown subcommand" F:frobnicate -- "$BIN" frobnicate
expect_bad "no subcommand" -- "$BIN"
expect_bad "unknown eval option" F:--frobnicate -- "$BIN" "${EVAL[@]}" --pattern dense --frobnicate 3
expect_bad "unknown init option" F:--frobnicate -- "$BIN" init --config good.yaml --out x.h5 --frobnicate
expect_bad "eval without --checkpoint" F:checkpoint -- \
    "$BIN" eval --data shard.bin --seq-len 8 --batches 2 --pattern dense --json out.json
expect_bad "eval without --pattern" F:pattern -- "$BIN" "${EVAL[@]}"
expect_bad "init without --out" F:out -- "$BIN" init --config good.yaml
expect_bad "option missing its value" F:--out -- "$BIN" init --config good.yaml --out
expect_bad "non-numeric --batches" F:batches -- \
    "$BIN" eval --checkpoint ck.h5 --data shard.bin --seq-len 8 --batches two --pattern dense --json out.json

finish
