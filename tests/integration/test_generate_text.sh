#!/usr/bin/env bash
# `ratplus generate --prompt TEXT --tokenizer FILE`: a SentencePiece model trained here (spm_train, from the
# distribution's `sentencepiece` package) tokenises the prompt exactly as `spm_encode` does, after the BOS id;
# what is printed is `spm_decode` of the generated ids. A missing tokenizer, a text prompt without one, and a
# tokenizer larger than the model's vocabulary exit 2 naming the problem.
# Usage: bash test_generate_text.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
if ! command -v spm_train >/dev/null; then
  echo "spm_train not found (apt-get install sentencepiece)" >&2
  exit 1
fi

"$PY" - <<'PY' >corpus.txt
import random
random.seed(3)
words = "the a model reads text and writes tokens while every layer keeps its state small fast".split()
for _ in range(400):
    print(" ".join(random.choice(words) for _ in range(random.randint(4, 12))))
PY
spm_train --input=corpus.txt --model_prefix=sp --vocab_size=39 --model_type=unigram --character_coverage=1.0 \
    >/dev/null 2>&1
check "spm_train made a model" '[ -s sp.model ]'
"$BIN" init --config "$REPO/configs/tiny.yaml" --out model.h5 model.vocab_size=39 2>/dev/null

prompt="the model reads text"
"$BIN" generate --checkpoint model.h5 --tokenizer sp.model --prompt "$prompt" --max-new 7 --pattern dense \
    --json out.json >stdout.txt 2>stderr.txt
rc=$?
if [ "$rc" -eq 0 ]; then ok "generate with a tokenizer exits 0"; else bad "generate with a tokenizer exits 0" \
    "exit $rc: $(head -c 400 stderr.txt)"; fi
expected_prompt="1 $(echo "$prompt" | spm_encode --model=sp.model --output_format=id)"
got_prompt=$("$PY" -c 'import json; print(" ".join(map(str, json.load(open("out.json"))["sequences"][0]["prompt"])))')
check "the prompt is BOS and spm_encode's ids ($expected_prompt)" '[ "$got_prompt" = "$expected_prompt" ]'
ids=$("$PY" -c 'import json; print(" ".join(map(str, json.load(open("out.json"))["sequences"][0]["tokens"])))')
expected_text=$(echo "$ids" | spm_decode --model=sp.model --input_format=id)
check "stdout is spm_decode of the generated ids" '[ "$(cat stdout.txt)" = "$expected_text" ]'

expect_usage_error "a missing tokenizer exits 2 naming it" "nope.model" \
    "$BIN" generate --checkpoint model.h5 --tokenizer nope.model --prompt hi --max-new 2 --pattern dense
expect_usage_error "a text prompt needs a tokenizer" "--tokenizer" \
    "$BIN" generate --checkpoint model.h5 --prompt hi --max-new 2 --pattern dense
"$BIN" init --config "$REPO/configs/tiny.yaml" --out small.h5 model.vocab_size=30 2>/dev/null
expect_usage_error "a tokenizer larger than the vocabulary exits 2" "do not fit the model's vocabulary of 30" \
    "$BIN" generate --checkpoint small.h5 --tokenizer sp.model --prompt hi --max-new 2 --pattern dense

finish
