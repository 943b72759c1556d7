# Sourced by the integration scripts: their common start, PASS/FAIL counting and expected-output matching.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# start_test "$@": checks for the script's one argument, the ratplus binary, and sets BIN to its absolute path,
# PY to a python3 with h5py and numpy (the first on the PATH, else the distribution's), and WORK to a fresh
# temporary directory, the working directory from then on, removed when the script exits.
start_test() {
    if [ $# -ne 1 ]; then
        echo "usage: bash $0 /path/to/ratplus" >&2
        exit 2
    fi
    BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    PY=python3
    if ! python3 -c 'import h5py, numpy' 2>/dev/null; then PY=/usr/bin/python3; fi
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    cd "$WORK" || exit 1
}

# start_multirank_test "$@": start_test, then use_test_device 2, CONFIG (the tiny config) and train.bin, 300k
# generated tokens of its vocabulary, for the tests that train on several MPI ranks.
start_multirank_test() {
    start_test "$@"
    use_test_device 2
    CONFIG=$REPO/configs/tiny.yaml
    "$BIN" data synth --out train.bin --tokens 300000 --vocab 256 --seed 1 2>/dev/null
}

# mpi N ARGS...: mpiexec with N ranks (oversubscribed, unbound, one OpenMP thread each, NVLink multicast off)
# running ARGS (mpiexec options may come first).
mpi() {
    local n=$1
    shift
    mpiexec -n "$n" --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x NCCL_NVLS_ENABLE=0 "$@"
}

# ratplus_ranks TEXT: the PIDs of the ratplus processes whose command line contains TEXT (not their launchers).
ratplus_ranks() {
    local pid
    for pid in $(pgrep -f -- "$1"); do
        [[ $(ps -o comm= -p "$pid") == ratplus ]] && echo "$pid"
    done
}

# use_test_device GPUS: sets DEVICE to the device the runs use, RATPLUS_TEST_DEVICE (default cpu); with cuda,
# exits 77 (ctest: skipped) unless the machine has at least GPUS GPUs.
use_test_device() {
    DEVICE=${RATPLUS_TEST_DEVICE:-cpu}
    if [[ $DEVICE == cuda ]]; then
        local gpus
        gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
        if (( gpus < $1 )); then
            echo "SKIP: needs $1 GPUs, this machine has $gpus"
            exit 77
        fi
    fi
}

# same_updates A.jsonl B.jsonl [TOL]: two training logs hold the same updates (step, pass, tokens) with losses and
# gradient norms equal to TOL relative (default 1e-5, f32 rounding).
same_updates() {
    "$PY" - "$1" "$2" "${3:-1e-5}" <<'PY'
import json, sys
updates = lambda f: [r for r in map(json.loads, open(f)) if 'pass' in r]
a, b = updates(sys.argv[1]), updates(sys.argv[2])
tol = float(sys.argv[3])
assert len(a) == len(b) > 0, (len(a), len(b))
for x, y in zip(a, b):
    assert (x['step'], x['pass'], x['tokens']) == (y['step'], y['pass'], y['tokens']), (x, y)
    for key in ('loss', 'grad_norm'):
        assert abs(x[key] - y[key]) <= tol * max(1.0, abs(x[key])), (key, x, y)
PY
}

# same_log A.jsonl B.jsonl: two training logs hold the same records, times apart.
same_log() {
    "$PY" - "$1" "$2" <<'PY'
import json, sys
records = lambda f: [{k: v for k, v in json.loads(l).items() if k != 'time'} for l in open(f)]
a, b = records(sys.argv[1]), records(sys.argv[2])
assert len(a) == len(b) > 0 and a == b, (len(a), len(b))
PY
}

# same_tensors A.h5 B.h5 GROUP [TOL]: every dataset below GROUP has the same shape and agrees to TOL relative L2
# (default 1e-3: on a GPU, atomics reorder sums, and Adam turns those roundings into small differences for
# parameters whose gradients are near zero).
same_tensors() {
    "$PY" - "$1" "$2" "$3" "${4:-1e-3}" <<'PY'
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], 'r')[sys.argv[3]]; b = h5py.File(sys.argv[2], 'r')[sys.argv[3]]
tol = float(sys.argv[4])
names = []
a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
assert names
for n in names:
    x, y = a[n][()].astype(np.float64), b[n][()].astype(np.float64)
    assert x.shape == y.shape, (n, x.shape, y.shape)
    assert np.linalg.norm(x - y) <= tol * np.linalg.norm(x) + 1e-9, (n, np.linalg.norm(x - y) / np.linalg.norm(x))
PY
}

passed=0
failed=0

# ok NAME, bad NAME [REASON]: count and print one check's outcome.
ok() { passed=$((passed + 1)); echo "PASS $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }

# check NAME CONDITION: passes when the shell code CONDITION succeeds.
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# unmatched WHAT TEXT NEEDLE...: names, one "...; " each, the needles that TEXT (called WHAT) lacks. A needle
# is "F:text", a fixed string, or "E:regex", an extended regular expression.
unmatched() {
    local what=$1 text=$2 needle
    shift 2
    for needle in "$@"; do
        case $needle in
            F:*) grep -qF -- "${needle#F:}" <<<"$text" || printf "%s lacks '%s'; " "$what" "${needle#F:}" ;;
            E:*) grep -qE -- "${needle#E:}" <<<"$text" || printf '%s does not match /%s/; ' "$what" "${needle#E:}" ;;
        esac
    done
}

# expect_usage_error NAME NEEDLE COMMAND...: exit code 2, NEEDLE on stderr, no out.json.
expect_usage_error() {
    local name=$1 needle=$2 rc
    shift 2
    rm -f out.json
    timeout 120 "$@" >/dev/null 2>stderr.txt
    rc=$?
    local problems=""
    [ "$rc" -eq 2 ] || problems+="exit code $rc, not 2; "
    problems+=$(unmatched stderr "$(cat stderr.txt)" "F:$needle")
    [ ! -e out.json ] || problems+="out.json written; "
    if [ -z "$problems" ]; then ok "$name"; else bad "$name" "$problems"; fi
}

# finish: prints the tally and exits, with status 0 only when nothing failed.
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}
