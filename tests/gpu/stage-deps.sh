#!/usr/bin/env bash
# Stages into .devdeps/ the distribution packages the GPU machine lacks (it reaches no package registry):
# prometheus-cpp and cpp-httplib (via the shared staging script), plus brotli's headers and libraries,
# which cpp-httplib's header includes, and SentencePiece (generate --tokenizer). Run here, then carry .devdeps to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
../shared/device/stage-deps.sh .devdeps
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download libbrotli-dev libbrotli1 libsentencepiece-dev libsentencepiece0 >/dev/null)
for deb in "$work"/*.deb; do dpkg -x "$deb" .devdeps; done
echo "staged brotli and SentencePiece into .devdeps"
