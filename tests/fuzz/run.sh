#!/usr/bin/env bash
# The sanitizer and fuzzing pass of CI. Builds the sanitizer configuration in build-sanitize/ (clang,
# AddressSanitizer + UndefinedBehaviorSanitizer, the libFuzzer targets of this folder), runs the CPU test
# suite under the sanitizers, then each fuzz target for FUZZ_SECONDS (default 60) from its seed corpus
# (tests/fuzz/corpus/<target>, copied so that the tree does not grow). A fuzz finding (crash-*, leak-*,
# timeout-* files, kept in build-sanitize/fuzz/<target>/) or a failing test fails the script.
# Usage: bash tests/fuzz/run.sh            (after launch/setup.sh --tests, which installs clang)
#        FUZZ_SECONDS=600 SANITIZE_TESTS=0 bash tests/fuzz/run.sh     (fuzzing only, longer)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${SANITIZE_BUILD_DIR:-build-sanitize}
seconds=${FUZZ_SECONDS:-60}
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRATPLUS_ENABLE_CUDA=OFF \
  -DRATPLUS_FUZZ=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
# Open MPI and HDF5 keep allocations until exit by design, so leaks are not reported for the suite; a
# sanitizer report of any other kind ends the test that caused it with a failure.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[[ ${SANITIZE_TESTS:-1} == 0 ]] || ctest --test-dir "$build" -j"$(nproc)" -E '^gpu\.' --output-on-failure
# Leaks count, except HDF5's own (lsan.supp). A damaged file can ask HDF5 for hundreds of GB at once: as on
# a real system, that malloc returns null (and HDF5 reports an error) instead of ending the run; actual
# memory use is still bounded by -rss_limit_mb.
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
# A crash, hang or excess of memory whose innermost frame outside libc, the allocator, the sanitizers and
# libFuzzer lies in the HDF5 library (reading a damaged file's metadata) is HDF5's own bug: it is listed, and
# fuzzing goes on (the checkpoint target runs in libFuzzer's fork mode). So is a finding that does not recur
# when its input runs alone (a fork-mode job ends at the input during which memory or time accumulated over
# thousands of inputs ran out). Any other finding fails.
# The replay reports a single allocation above 1 GB where it is asked for (with its stack) before the
# resident memory reaches its 4 GB limit; an excess of resident memory alone is reported with the largest live
# blocks, which are libFuzzer's, and so counts as ours.
classify() {  # TARGET ARTIFACT -> prints "hdf5", "not-reproduced" or "ours"
  local report
  report=$("$build/fuzz_$1" -timeout=5 -rss_limit_mb=4096 -malloc_limit_mb=1024 "$2" 2>&1 || true)
  if ! grep -q -E 'ERROR: |ALARM: |deadly signal' <<<"$report"; then
    echo not-reproduced
  elif bash tests/fuzz/innermost_frame.sh <<<"$report" | grep -q libhdf5; then
    echo hdf5
  else
    echo ours
  fi
}
# The triage itself, on inputs known to fail inside HDF5 (tests/fuzz/hdf5_findings/TARGET/): each must be
# classified as HDF5's, or the run fails before it fuzzes.
for known in tests/fuzz/hdf5_findings/*/*; do
  target=$(basename "$(dirname "$known")")
  finding=$(classify "$target" "$known")
  [[ $finding == hdf5 ]] || { echo "triage: $known is HDF5's, but was classified as $finding" >&2; exit 1; }
done
for target in config pattern shard checkpoint choice; do
  work=$build/fuzz/$target
  rm -rf "$work" && mkdir -p "$work/corpus"
  cp tests/fuzz/corpus/$target/* "$work/corpus/"
  echo "fuzz_$target: $seconds s"
  mode=()
  [[ $target == checkpoint ]] && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  rc=0
  (cd "$work" && "../../fuzz_$target" "${mode[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=1048576 -print_final_stats=1 corpus >log.txt 2>&1) || rc=$?
  artifacts=0
  for artifact in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [[ -e $artifact ]] || continue
    artifacts=$((artifacts + 1))
    finding=ours
    [[ $artifact == */leak-* ]] || finding=$(classify "$target" "$artifact")
    if [[ $finding == hdf5 ]]; then
      echo "  inside HDF5 (a damaged file's metadata): $(basename "$artifact")"
    elif [[ $finding == not-reproduced ]]; then
      echo "  not reproduced alone (accumulated over a job): $(basename "$artifact")"
    else
      tail -40 "$work/log.txt"
      echo "fuzz_$target found a problem: $artifact" >&2
      exit 1
    fi
  done
  if [[ $rc -ne 0 && $artifacts -eq 0 ]]; then
    tail -40 "$work/log.txt"
    echo "fuzz_$target failed (exit $rc): $work/log.txt" >&2
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^stat::new_units_added|^#[0-9]+: cov' "$work/log.txt" | tail -2 | tr '\n' ' '
  echo
done
