#!/usr/bin/env bash
# tests/fuzz/innermost_frame.sh, which tells the fuzz run (tests/fuzz/run.sh) whether a finding lies in HDF5: on
# a report of an allocation that HDF5 asked for (a damaged variable-length string attribute asking for 19 GB,
# found by fuzz_checkpoint) it names the HDF5 frame below ASan's allocator frames; with that frame replaced by
# one of ours, ours; on a report without frames, nothing.
# Usage: bash test_fuzz_triage.sh /path/to/ratplus
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
report=$REPO/tests/fuzz/reports/hdf5_vlen_attribute_malloc.txt
frame=$(bash "$REPO/tests/fuzz/innermost_frame.sh" <"$report")
check "an allocation HDF5 asked for: the innermost frame is HDF5's" '[[ $frame == *"#8 "*libhdf5* ]]'
sed -E '/#(8|9|10|11|12|13) /d' "$report" >ours.txt
frame=$(bash "$REPO/tests/fuzz/innermost_frame.sh" <ours.txt)
check "the same allocation asked for by ratplus: the innermost frame is ours" \
  '[[ $frame == *"#14 "*ratplus::Hdf5File::read_string_attribute* ]]'
frame=$(echo "==1== ERROR: libFuzzer: timeout" | bash "$REPO/tests/fuzz/innermost_frame.sh")
check "a report without frames: nothing" '[[ -z $frame ]]'
finish
