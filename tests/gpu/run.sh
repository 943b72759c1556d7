#!/usr/bin/env bash
# Builds ratplus with the CUDA backend and runs the gpu-labelled tests on a GPU machine. Expects the
# libraries that machine lacks staged into .devdeps/ beforehand by tests/gpu/stage-deps.sh.
# Writes the test log to $OUT/gpu-tests.log when OUT is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps=$PWD/.devdeps/usr
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-} PATH=$deps/bin:$PATH
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 NCCL_NVLS_ENABLE=0
log=${OUT:-.}/gpu-tests.log
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$log"
git log -1 --format='commit %h %s' 2>/dev/null | tee -a "$log" || true
# The python3 first on PATH: on the GPU machine it is the one with numpy and h5py, not /usr/bin/python3.
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
  -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build-gpu -j"$(nproc)" 2>&1 | tail -3
ctest --test-dir build-gpu -L gpu --output-on-failure 2>&1 | tee -a "$log"
