#!/usr/bin/env bash
# Training under mpirun (data parallel, and tensor parallel with parallel.tp), on one node or on the nodes of a
# hostfile, restarted after a failure or preemption until the run is finished (each start resumes from the
# newest good checkpoint, whatever the layout it was saved in).
#
#   launch/mpirun.sh -n 8 [-H hostfile] [--tries N] -- --config configs/ratplus-1.5b.yaml [key=value ...]
#   launch/mpirun.sh -n 16 -H hosts.txt -- --config configs/ratplus-7.6b.yaml parallel.tp=4
#
# Ranks fill each host's slots in order (--map-by slot), so the parallel.tp consecutive ranks of a tensor-
# parallel group share a node and its NVLink. RATPLUS_COLLECTIVE_TIMEOUT (seconds, default 1800) bounds how
# long a collective may wait for a peer; it is passed on with the NCCL settings. RATPLUS_BIN names the program
# (default build/ratplus); relative paths in the arguments are taken from the repository root.
# -n: processes in all (one per GPU); -H: an Open MPI hostfile ("node01 slots=8" per line) for several
# nodes; --tries: how many starts at most (default 20). Everything after "--" goes to `ratplus train`.
# The exit code of each start decides what follows (README, "Exit codes"): 0 (finished), 2 (bad input) and
# 3 (stopped at train.stop_after) end the launcher with that code; 75 (the ranks got SIGTERM or SIGINT and
# stopped with a checkpoint) and any other code (a failure) start the job again after a short pause. SIGTERM
# or SIGINT to this script passes SIGUSR1 to mpirun, which passes it on to every rank: they stop with a
# checkpoint and the script ends with 75 without starting them again. (Not SIGTERM: on a SIGTERM mpirun sends
# the ranks SIGTERM and, odls_base_sigkill_timeout seconds later — 1 by default — SIGKILL, too soon for a
# checkpoint.) After --tries starts it gives up with exit 1.
set -uo pipefail
cd "$(dirname "$0")/.."
procs=1 hostfile="" tries=20
while [[ $# -gt 0 ]]; do
  case $1 in
    -n) procs=$2; shift 2 ;;
    -H) hostfile=$2; shift 2 ;;
    --tries) tries=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "mpirun.sh: unknown option $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
[[ $# -gt 0 ]] || { echo "mpirun.sh: give the train arguments after --" >&2; exit 2; }

mpi=(mpirun -n "$procs" --bind-to none --map-by slot -x OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
  -x NCCL_NVLS_ENABLE=0 -x NCCL_DEBUG=${NCCL_DEBUG:-WARN}  # NVLink multicast stays off
  -x RATPLUS_COLLECTIVE_TIMEOUT=${RATPLUS_COLLECTIVE_TIMEOUT:-1800})
[[ -n ${LD_LIBRARY_PATH:-} ]] && mpi+=(-x LD_LIBRARY_PATH)  # passed on only when set (mpirun warns otherwise)
[[ -n $hostfile ]] && mpi+=(--hostfile "$hostfile")
[[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

stopping=0 job=""
trap 'stopping=1; kill -USR1 "$job" 2>/dev/null' TERM INT
for ((attempt = 1; attempt <= tries && !stopping; ++attempt)); do
  "${mpi[@]}" "${RATPLUS_BIN:-build/ratplus}" train "$@" &
  job=$!
  wait "$job"
  rc=$?
  if ((stopping)); then
    wait "$job"  # the trap ended the first wait early; mpirun's exit code then says little
    break
  fi
  case $rc in
    0) exit 0 ;;
    2) echo "mpirun.sh: bad input (exit 2); not restarting" >&2; exit 2 ;;
    3) echo "mpirun.sh: stopped at train.stop_after (exit 3); not restarting" >&2; exit 3 ;;
  esac
  echo "mpirun.sh: start $attempt ended (exit $rc); starting again from the newest checkpoint" >&2
  sleep 5
done
if ((stopping)); then
  echo "mpirun.sh: stopped by a signal; not restarting" >&2
  exit 75
fi
echo "mpirun.sh: gave up after $tries starts" >&2
exit 1
