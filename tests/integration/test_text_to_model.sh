#!/usr/bin/env bash
# The README's path from text to a usable model, command by command, as a new user follows it: a SentencePiece
# tokenizer (trained here by spm_train, standing in for LLaMA-2's tokenizer.model), `data prepare` of JSON
# Lines into shards, `train` on those shards, `eval` under dense and dilated patterns (the trained model beats
# its initialisation), `tools/convert_checkpoint.py` to the reference format and back (the same loss),
# `eval --task choice` on text questions, and `generate` from a text prompt.
# Skipped (exit 77) without spm_train, a build without SentencePiece, or without PyTorch for the conversion.
# Usage: bash test_text_to_model.sh /path/to/ratplus
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
command -v spm_train >/dev/null || { echo "SKIP: spm_train not found (apt-get install sentencepiece)"; exit 77; }
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "SKIP: PyTorch not installed (python3-torch)"; exit 77; }

"$PY" - <<'PY'
import json, random
random.seed(11)
words = "the cat sat on a mat and the dog ran to the park while birds sang in tall green trees".split()
with open("corpus.txt", "w") as f, open("docs.jsonl", "w") as docs:
    for i in range(1500):
        start = random.randrange(len(words))
        text = " ".join(words[(start + k) % len(words)] for k in range(random.randint(8, 30)))
        print(text, file=f)
        docs.write(json.dumps({"text": text}) + "\n")
# Questions whose right ending continues the word cycle of the training text.
with open("questions.jsonl", "w") as f:
    for i in range(12):
        start = random.randrange(len(words))
        context = " ".join(words[(start + k) % len(words)] for k in range(6))
        right = words[(start + 6) % len(words)]
        wrong = [w for w in ("zebra", "violin", "quantum") if w != right]
        endings = [right] + wrong
        random.shuffle(endings)
        f.write(json.dumps({"context": context, "endings": endings, "label": endings.index(right)}) + "\n")
PY
spm_train --input=corpus.txt --model_prefix=tokenizer --vocab_size=300 --hard_vocab_limit=false \
  --model_type=unigram --character_coverage=1.0 --byte_fallback=true >/dev/null 2>&1
if ! "$BIN" data prepare --tokenizer tokenizer.model --input docs.jsonl --out data/mine --eos --val-fraction 0.1 \
  --shard-tokens 20K >prepare.out 2>prepare.log; then
  grep -q "has no SentencePiece library" prepare.log && { echo "SKIP: this build has no SentencePiece"; exit 77; }
fi
check "data prepare writes train and val shards and a manifest" \
  '[[ -f data/mine/train_000000.bin && -f data/mine/val_000000.bin && -f data/mine/manifest.json ]]'

train=(--config "$REPO/configs/tiny.yaml" model.vocab_size=320 "data.train=data/mine/train_*.bin"
  "data.val=data/mine/val_*.bin" data.eos_id=2 data.seq_len=64 train.steps=120 train.val_every=60
  train.log_every=60 checkpoint.every=60 checkpoint.dir=run train.metrics_jsonl=run.jsonl runtime.device=cpu)
"$BIN" init --out init.h5 "${train[@]}" 2>/dev/null
"$BIN" train "${train[@]}" 2>train.log
check "train on the shards writes its last checkpoint" '[[ -f run/step_00000120.h5 ]]'

evaluate() {  # CHECKPOINT JSON: eval on the validation shards under dense and dilated(4)
  "$BIN" eval --checkpoint "$1" --data 'data/mine/val_*.bin' --seq-len 64 --batches 4 --pattern dense \
    --pattern dilated:D=4 --json "$2" >/dev/null 2>>eval.log
}
evaluate init.h5 init.json
evaluate run/step_00000120.h5 trained.json
check "the trained model's validation loss is below its initialisation's, dense and dilated" "$PY - <<'PY'
import json
a, b = (json.load(open(f))['results'] for f in ('init.json', 'trained.json'))
assert all(y['loss'] < x['loss'] - 1.0 for x, y in zip(a, b)), (a, b)
PY"

/usr/bin/python3 "$REPO/tools/convert_checkpoint.py" run/step_00000120.h5 model.pth 2>convert.log &&
  /usr/bin/python3 "$REPO/tools/convert_checkpoint.py" model.pth back.h5 --n-heads 4 2>>convert.log
evaluate back.h5 back.json
check "converted to the reference format and back, it evaluates to the same losses" "$PY - <<'PY'
import json
a, b = (json.load(open(f))['results'] for f in ('trained.json', 'back.json'))
assert [x['loss'] for x in a] == [y['loss'] for y in b], (a, b)
PY"

"$BIN" eval --task choice --checkpoint run/step_00000120.h5 --data questions.jsonl --tokenizer tokenizer.model \
  --seq-len 64 --pattern dense --json choice.json >choice.out 2>choice.log
check "eval --task choice scores the 12 text questions" "$PY - <<'PY'
import json
r = json.load(open('choice.json'))['results'][0]
assert r['n'] == 12 and 0 <= r['acc'] <= 1 and 0 <= r['acc_norm'] <= 1, r
PY"

"$BIN" generate --checkpoint run/step_00000120.h5 --tokenizer tokenizer.model --prompt "the cat sat on" \
  --max-new 8 --pattern dilated:D=4 >generate.out 2>generate.log
check "generate continues a text prompt as text" '[[ $? -eq 0 && -s generate.out ]] && grep -q "[a-z]" generate.out'
finish
