#!/usr/bin/env bash
# Stages into .devdeps/ the distribution packages the GPU machine lacks (it reaches no package registry):
# prometheus-cpp (via the shared staging script) and SentencePiece (generate --tokenizer; its spm_train for
# the tests). Run here, then carry .devdeps to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
../shared/device/stage-deps.sh .devdeps
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download libsentencepiece-dev libsentencepiece0 sentencepiece >/dev/null)
for deb in "$work"/*.deb; do dpkg -x "$deb" .devdeps; done
echo "staged SentencePiece into .devdeps"
