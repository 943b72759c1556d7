#!/usr/bin/env bash
# `ratplus eval --task choice`: multiple-choice questions as token ids and as text (a SentencePiece model
# trained here by spm_train) give the table and the JSON report under several patterns; text questions score
# as the token questions holding BOS + spm_encode(context) and the tail of spm_encode(context + " " + ending);
# bad questions and options exit 2 naming the file and line (or the option) and write no report. With
# RATPLUS_TEST_DEVICE=cuda the token questions also run on the GPU and must choose as on the CPU.
# Usage: bash test_eval_choice.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"

"$BIN" init --config "$REPO/configs/tiny.yaml" --out model.h5 2>/dev/null
"$PY" - <<'PY' >tokens.jsonl
import json, random
random.seed(5)
for _ in range(40):
    endings = [[random.randrange(256) for _ in range(random.randint(1, 6))] for _ in range(random.randint(2, 4))]
    context = [1] + [random.randrange(256) for _ in range(random.randint(0, 40))]
    print(json.dumps({"context_tokens": context, "endings_tokens": endings, "label": random.randrange(len(endings))}))
PY
CHOICE=(eval --task choice --checkpoint model.h5 --seq-len 32 --pattern dense)

"$BIN" "${CHOICE[@]}" --data tokens.jsonl --pattern dilated:D=4,W=2,P=1 --micro-batch 5 --json out.json \
    >stdout.txt 2>stderr.txt
rc=$?
if [ "$rc" -eq 0 ]; then ok "token questions exit 0"; else bad "token questions exit 0" "exit $rc: $(head -c 400 stderr.txt)"; fi
check "the table has a row per pattern" \
    'grep -qE "^pattern +acc +stderr +acc_norm +stderr +n$" stdout.txt && grep -qE "^dense +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +40$" stdout.txt && grep -qE "^dilated:D=4,W=2,P=1 .* 40$" stdout.txt'
check "the JSON reports n, acc, acc_norm and their standard errors per pattern" '"$PY" - <<PY
import json, math
r = json.load(open("out.json"))["results"]
assert [x["pattern"] for x in r] == ["dense", "dilated:D=4,W=2,P=1"], r
for x in r:
    assert x["n"] == 40 and 0 <= x["acc"] <= 1 and 0 <= x["acc_norm"] <= 1, x
    assert abs(x["acc_stderr"] - math.sqrt(x["acc"] * (1 - x["acc"]) / 39)) < 1e-12, x
PY'
"$BIN" "${CHOICE[@]}" --data tokens.jsonl --micro-batch 1 --json one.json >/dev/null 2>&1
check "one candidate per pass gives the same accuracies as five" '"$PY" - <<PY
import json
a = json.load(open("out.json"))["results"][0]; b = json.load(open("one.json"))["results"][0]
assert (a["acc"], a["acc_norm"]) == (b["acc"], b["acc_norm"]), (a, b)
PY'

# On a GPU (RATPLUS_TEST_DEVICE=cuda, the gpu.test_eval_choice test) the same questions, batched on the device in
# f32, choose as the CPU does.
use_test_device 1
if [[ $DEVICE == cuda ]]; then
    "$BIN" "${CHOICE[@]}" --data tokens.jsonl --pattern dilated:D=4,W=2,P=1 --micro-batch 5 --device cuda \
        --precision fp32 --json gpu.json >/dev/null 2>gpu.log
    check "on the GPU (f32): the CPU's accuracies under both patterns" '"$PY" - <<PY
import json
a = json.load(open("out.json"))["results"]; b = json.load(open("gpu.json"))["results"]
assert [(x["acc"], x["acc_norm"]) for x in a] == [(y["acc"], y["acc_norm"]) for y in b], (a, b)
PY'
fi

# --- bad questions and options --------------------------------------------------------
good='{"context_tokens": [1, 2], "endings_tokens": [[3], [4, 5]], "label": 1}'
refused() {  # NAME LINE NEEDLE: a file of a good line and LINE is refused, naming bad.jsonl:2 and NEEDLE
    printf '%s\n%s\n' "$good" "$2" >bad.jsonl
    expect_usage_error "$1" "bad.jsonl:2: $3" "$BIN" "${CHOICE[@]}" --data bad.jsonl --json out.json
}
refused "a line that is not JSON" '{"context_tokens": [1' "not valid JSON"
refused "a number beyond a double's range" '{"context_tokens": [1], "endings_tokens": [[3]], "label": 1e999}' "not valid JSON"
refused "a line that is not an object" '[1, 2]' "not a JSON object"
refused "no context" '{"endings_tokens": [[3]], "label": 0}' 'no "context" or "context_tokens"'
refused "no endings" '{"context_tokens": [1], "label": 0}' 'no "endings_tokens"'
refused "no label" '{"context_tokens": [1], "endings_tokens": [[3]]}' 'no "label"'
refused "a label out of range" '{"context_tokens": [1], "endings_tokens": [[3], [4]], "label": 2}' '"label" 2 is not'
refused "empty endings" '{"context_tokens": [1], "endings_tokens": [], "label": 0}' '"endings_tokens" is empty'
refused "an empty ending" '{"context_tokens": [1], "endings_tokens": [[3], []], "label": 0}' '"endings_tokens"[1] is empty'
refused "a token id beyond the vocabulary" '{"context_tokens": [1, 256], "endings_tokens": [[3]], "label": 0}' \
    "\"context_tokens\" holds token 256, outside the vocabulary of 256"
refused "a text line without --tokenizer" '{"context": "a", "endings": ["b"], "label": 0}' "a text question needs --tokenizer"
refused "an ending longer than the window" \
    "{\"context_tokens\": [1], \"endings_tokens\": [[$(seq -s, 1 33)]], \"label\": 0}" "ending 0 has 33 tokens"
printf '\n\n' >empty.jsonl
expect_usage_error "a file without questions" "holds no question" \
    "$BIN" "${CHOICE[@]}" --data empty.jsonl --json out.json
expect_usage_error "a missing file" "missing.jsonl" "$BIN" "${CHOICE[@]}" --data missing.jsonl --json out.json
expect_usage_error "two data files" "one --data file" \
    "$BIN" "${CHOICE[@]}" --data tokens.jsonl tokens.jsonl --json out.json
expect_usage_error "--batches under --task choice" "--batches does not apply to --task choice" \
    "$BIN" "${CHOICE[@]}" --data tokens.jsonl --batches 2 --json out.json
expect_usage_error "--task loss without --batches" "--task loss needs --batches" \
    "$BIN" eval --checkpoint model.h5 --data tokens.jsonl --seq-len 8 --pattern dense --json out.json
expect_usage_error "an unknown task" "--task" "$BIN" "${CHOICE[@]}" --task nope --data tokens.jsonl --json out.json

# --- text questions through SentencePiece ---------------------------------------------
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
"$BIN" init --config "$REPO/configs/tiny.yaml" --out text.h5 model.vocab_size=39 2>/dev/null
# text.jsonl, and its questions as ids made by spm_encode (ids.jsonl): BOS (1), the context's ids, and of
# each ending the ids that spm_encode of context + " " + ending has beyond the context's.
"$PY" - <<'PY'
import json, random, subprocess
random.seed(4)
words = "the a model reads text and writes tokens while every layer keeps its state small fast".split()
encode = lambda s: [int(t) for t in subprocess.run(["spm_encode", "--model=sp.model", "--output_format=id"],
                    input=s + "\n", capture_output=True, text=True, check=True).stdout.split()]
sentence = lambda lo, hi: " ".join(random.choice(words) for _ in range(random.randint(lo, hi)))
with open("text.jsonl", "w") as text, open("ids.jsonl", "w") as ids:
    for _ in range(12):
        context, endings = sentence(3, 8), [sentence(1, 4) for _ in range(3)]
        label = random.randrange(3)
        text.write(json.dumps({"context": context, "endings": endings, "label": label}) + "\n")
        c = encode(context)
        ids.write(json.dumps({"context_tokens": [1] + c, "endings_tokens": [encode(context + " " + e)[len(c):]
                                                                            for e in endings], "label": label}) + "\n")
PY
TEXT=(eval --task choice --checkpoint text.h5 --seq-len 64 --pattern dense --pattern local:W=3)
"$BIN" "${TEXT[@]}" --data text.jsonl --tokenizer sp.model --json text.json >/dev/null 2>stderr.txt
rc=$?
if [ "$rc" -eq 0 ]; then ok "text questions exit 0"; else bad "text questions exit 0" "exit $rc: $(head -c 400 stderr.txt)"; fi
"$BIN" "${TEXT[@]}" --data ids.jsonl --json ids.json >/dev/null 2>&1
check "text questions score as their spm_encode ids (acc equal under both patterns)" '"$PY" - <<PY
import json
a = json.load(open("text.json"))["results"]; b = json.load(open("ids.json"))["results"]
assert [x["acc"] for x in a] == [x["acc"] for x in b] and a[0]["n"] == 12, (a, b)
PY'
"$BIN" init --config "$REPO/configs/tiny.yaml" --out small.h5 model.vocab_size=30 2>/dev/null
expect_usage_error "a tokenizer larger than the vocabulary exits 2" "do not fit the model's vocabulary of 30" \
    "$BIN" eval --task choice --checkpoint small.h5 --seq-len 64 --pattern dense --data text.jsonl --tokenizer sp.model \
    --json out.json
expect_usage_error "a tokenizer that does not load exits 2 naming it" "nope.model" \
    "$BIN" "${TEXT[@]}" --data text.jsonl --tokenizer nope.model --json out.json
finish
