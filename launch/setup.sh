#!/usr/bin/env bash
# Installs what ratplus needs from the distribution's packages (when run as root and something is
# missing) and builds it into build/. Safe to run again: it only installs what is missing and rebuilds
# what changed.
#   bash launch/setup.sh            # Release build of the program in build/
#   bash launch/setup.sh --tests    # also the test binaries and the tools the test suite uses (the Prometheus
#                                   # server, spm_train, clang, Python's sentencepiece, torch and matplotlib)
#   BUILD_DIR=build-debug BUILD_TYPE=Debug bash launch/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config
  libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev prometheus-cpp-dev libcli11-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libopenblas-openmp-dev libgtest-dev libgmock-dev libbenchmark-dev libsentencepiece-dev
  python3 python3-numpy python3-h5py)
[[ ${1:-} == --tests ]] && packages+=(prometheus sentencepiece python3-sentencepiece python3-torch python3-matplotlib clang libomp-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 2
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
# The program alone, unless the tests are wanted too (their binaries are most of the build).
targets=(--target ratplus)
[[ ${1:-} == --tests ]] && targets=()
cmake --build "$build" -j"$(nproc)" "${targets[@]}"
echo "setup: built $build/ratplus"
