#!/usr/bin/env bash
# `ratplus data prepare`: a SentencePiece model trained here (spm_train, from the distribution's `sentencepiece`
# package; byte fallback and no normalisation, as LLaMA-2's) tokenizes a .txt and a .jsonl input. Checked with
# numpy and spm_decode: the llm.c headers and counts agree with the manifest, every shard but the last holds
# --shard-tokens tokens, every document is BOS + its ids (+ EOS with --eos) and decodes back to its text,
# documents keep input order and go to val exactly when (splitmix64(fnv1a64(text)) >> 11) * 2^-53 <
# --val-fraction, and --threads 1 and 2 write the same bytes. `data inspect --tokenizer` prints the first
# tokens as text. Bad input exits 2 naming the file (and line) and leaves no output directory.
# Skipped (exit 77) without spm_train or when the build lacks SentencePiece.
# Usage: bash test_data_prepare.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
if ! command -v spm_train >/dev/null || ! command -v spm_decode >/dev/null; then
    echo "SKIP: spm_train or spm_decode not found (apt-get install sentencepiece)"
    exit 77
fi

"$PY" - <<'PY'
import json, random
random.seed(7)
words = "the a model reads text and writes tokens while every layer keeps its state small fast".split()
sentence = lambda: " ".join(random.choice(words) for _ in range(random.randint(3, 10)))
with open("corpus.txt", "w") as f:
    for _ in range(400):
        print(sentence(), file=f)
# .txt: documents separated by a form-feed line or two blank lines; one blank line stays inside a document.
txt = [sentence() + "\n\n" + sentence(), sentence(), "café " + sentence(), sentence() + "\n" + sentence()]
with open("docs.txt", "w") as f:
    f.write("\n" + txt[0] + "\n\n\n" + txt[1] + "\n\f\n" + txt[2] + "\n\n \n" + txt[3] + "\n")
jsonl = [sentence() + (" 日本" if i % 50 == 0 else "") for i in range(300)]
with open("docs.jsonl", "w") as f:
    for i, text in enumerate(jsonl):
        f.write(json.dumps({"id": i, "text": text}) + "\n")
json.dump(txt + jsonl, open("expected.json", "w"))
PY
spm_train --input=corpus.txt --model_prefix=sp --vocab_size=300 --hard_vocab_limit=false --model_type=unigram \
    --character_coverage=1.0 --byte_fallback=true --normalization_rule_name=identity \
    --remove_extra_whitespaces=false >/dev/null 2>&1
check "spm_train made a model" '[ -s sp.model ]'

"$BIN" data prepare --tokenizer sp.model --input docs.txt --out probe >/dev/null 2>stderr.txt
if grep -q "no SentencePiece library" stderr.txt; then
    expect_usage_error "a build without SentencePiece refuses data prepare" "no SentencePiece library" \
        "$BIN" data prepare --tokenizer sp.model --input docs.txt --out probe2
    echo "SKIP: this build has no SentencePiece"
    exit 77
fi

prepare() {  # prepare OUT ARGS...: exit 0 expected
    local out=$1 rc
    shift
    "$BIN" data prepare --tokenizer sp.model --input docs.txt docs.jsonl --out "$out" --val-fraction 0.2 \
        --shard-tokens 2K "$@" >/dev/null 2>"$out.stderr"
    rc=$?
    if [ "$rc" -eq 0 ]; then ok "data prepare $out exits 0"; else bad "data prepare $out exits 0" \
        "exit $rc: $(head -c 400 "$out.stderr")"; fi
}
prepare eos1 --eos --threads 1
prepare eos2 --eos --threads 2
prepare plain --threads 2

# check_output DIR EOS: the shards, the manifest and the documents (see the header).
check_output() {
    "$PY" - "$1" "$2" <<'PY'
import glob, json, os, subprocess, sys
import numpy as np
out, eos = sys.argv[1], sys.argv[2] == "1"
m = json.load(open(os.path.join(out, "manifest.json")))
docs = json.load(open("expected.json"))
M = (1 << 64) - 1
def fnv1a64(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & M
    return h
def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M
    return x ^ (x >> 31)
pos = lambda t: (splitmix64(fnv1a64(t.encode())) >> 11) * 2.0 ** -53
assert m["options"]["val_fraction"] == 0.2 and m["options"]["shard_tokens"] == 2000, m["options"]
assert m["tokenizer"]["eos_appended"] == eos and m["tokenizer"]["vocab_size"] < 65536, m["tokenizer"]
assert [i["documents"] for i in m["inputs"]] == [4, 300], m["inputs"]
assert [i["bytes"] for i in m["inputs"]] == [os.path.getsize("docs.txt"), os.path.getsize("docs.jsonl")]
bos, eos_id = m["tokenizer"]["bos_id"], m["tokenizer"]["eos_id"]
for split in ("train", "val"):
    s = m[split]
    files = [sh["file"] for sh in s["shards"]]
    assert files == [os.path.basename(p) for p in sorted(glob.glob(os.path.join(out, split + "_*.bin")))], files
    assert files == ["%s_%06d.bin" % (split, i) for i in range(len(files))], files
    tokens = []
    for i, sh in enumerate(s["shards"]):
        raw = open(os.path.join(out, sh["file"]), "rb").read()
        header = np.frombuffer(raw[:1024], dtype="<i4")
        assert (header[0], header[1], header[2]) == (20240520, 1, sh["tokens"]), (sh, header[:3])
        assert len(raw) == 1024 + 2 * sh["tokens"], sh
        assert sh["tokens"] == 2000 or i == len(files) - 1, sh
        tokens.append(np.frombuffer(raw[1024:], dtype="<u2"))
    tokens = np.concatenate(tokens).tolist()
    assert len(tokens) == s["tokens"], (split, len(tokens), s["tokens"])
    starts = [i for i, t in enumerate(tokens) if t == bos]
    assert starts[0] == 0 and len(starts) == s["documents"], (split, starts[:3], s["documents"])
    expected = [d for d in docs if (pos(d) < 0.2) == (split == "val")]
    assert len(expected) == s["documents"], (split, len(expected), s["documents"])
    for k, begin in enumerate(starts):
        ids = tokens[begin + 1:starts[k + 1] if k + 1 < len(starts) else len(tokens)]
        if eos:
            assert ids[-1] == eos_id, (split, k, ids[-3:])
            ids = ids[:-1]
        assert eos_id not in ids, (split, k)
        text = subprocess.run(["spm_decode", "--model=sp.model", "--input_format=id"], input=" ".join(map(str, ids)),
                              capture_output=True, text=True, check=True).stdout
        assert text[:-1] == expected[k], (split, k, text, expected[k])
assert m["val"]["documents"] > 20 and m["train"]["documents"] > 200, (m["val"]["documents"], m["train"]["documents"])
PY
}
check "--eos: shards, manifest and documents agree (BOS first, EOS last, hash split, decodes back)" \
    'check_output eos1 1'
check "without --eos: documents end without EOS" 'check_output plain 0'
check "--threads 1 and 2 write the same files" \
    '[ "$(ls eos1)" = "$(ls eos2)" ] && for f in $(ls eos1); do cmp -s eos1/$f eos2/$f || exit 1; done'
check "several train shards" '[ -e eos1/train_000001.bin ]'
check "no progress line without a terminal, a summary instead" \
    '! grep -q $'"'"'\r'"'"' eos1.stderr && grep -q "documents" eos1.stderr'

"$BIN" data inspect --tokenizer sp.model eos1/train_000000.bin >inspect.txt 2>&1
inspect_shows_text() {
    "$PY" - <<'PY'
import json
line = [l for l in open("inspect.txt") if l.startswith("  text: ")][0]
text = json.loads(line[len("  text: "):])
assert len(text) > 10 and any(d.startswith(text) for d in json.load(open("expected.json"))), text
PY
}
check "data inspect --tokenizer prints the first tokens as the start of a document" inspect_shows_text

printf '{"text": "fine"}\n{"text": "also fine"}\n{"text": oops}\n' >bad.jsonl
: >empty.txt
echo hi >a.csv
mkdir full && echo x >full/file
run=("$BIN" data prepare --tokenizer sp.model)
expect_usage_error "a missing input exits 2 naming it" "nope.txt" "${run[@]}" --input docs.txt nope.txt --out o1
expect_usage_error "an unknown extension exits 2 naming the file" "'a.csv' has an unknown extension" \
    "${run[@]}" --input a.csv --out o1
expect_usage_error "an empty input exits 2 naming it" "'empty.txt' is empty" "${run[@]}" --input empty.txt --out o1
expect_usage_error "a tokenizer that does not load exits 2 naming it" "cannot load 'corpus.txt'" \
    "$BIN" data prepare --tokenizer corpus.txt --input docs.txt --out o1
expect_usage_error "--val-fraction 1 exits 2" "--val-fraction must be in [0, 1)" \
    "${run[@]}" --input docs.txt --out o1 --val-fraction 1
expect_usage_error "--val-fraction -0.5 exits 2" "--val-fraction must be in [0, 1)" \
    "${run[@]}" --input docs.txt --out o1 --val-fraction=-0.5
for bad_count in 0 abc 10X; do
    expect_usage_error "--shard-tokens $bad_count exits 2" "--shard-tokens must be a positive whole number" \
        "${run[@]}" --input docs.txt --out o1 --shard-tokens "$bad_count"
done
expect_usage_error "a non-empty output directory exits 2" "'full' is not empty" "${run[@]}" --input docs.txt --out full
expect_usage_error "a bad JSON line exits 2 naming the file and line" "bad.jsonl:3: not valid JSON" \
    "${run[@]}" --input docs.jsonl bad.jsonl --out o1
expect_usage_error "a missing text field exits 2 naming the file, line and field" 'docs.jsonl:1: no field "body"' \
    "${run[@]}" --input docs.jsonl --out o1 --text-field body
check "no output directory is left behind by the failures" '[ ! -e o1 ]'

finish
