#!/usr/bin/env bash
# Sets up (launch/setup.sh) and runs the whole test suite: unit tests, gradient checks, integration tests
# of the real binary (a real Prometheus server scrapes a training run). GPU tests skip themselves where no
# GPU exists (tests/gpu/run.sh runs them on one). Then the suite again under AddressSanitizer and
# UndefinedBehaviorSanitizer, and each fuzz target for a minute (tests/fuzz/run.sh; SANITIZE=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh --tests
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir "${BUILD_DIR:-build}" -j"$(nproc)" --output-on-failure
[[ ${SANITIZE:-1} == 0 ]] || bash tests/fuzz/run.sh
