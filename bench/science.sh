#!/usr/bin/env bash
# The paper's central result in one command: on the llm.c shards of DATA_DIR (train_*.bin, val_*.bin), trains
# an attention-only model with the dense objective, the same attention model with the joint objective
# (L* = 64) and a RAT+ model with the joint objective (L* = 64); evaluates each dense, dilated(16),
# dilated(64) and under top-k block attention; adapts each to dilated(16) for a short run and evaluates it
# again; runs the recall evaluation on each; and prints one table, also written as OUT/science.md and
# OUT/science.json, with OUT/loss_curves.png and OUT/losses.png drawn by tools/plot_runs.py (matplotlib).
# The three models' pipelines run side by side (one GPU holds all three), each logging to OUT/NAME.log;
# training is in bf16 on a GPU and in f32 on the CPU.
# Usage: bash bench/science.sh DATA_DIR [OUT]          (OUT defaults to science-out)
# The sizes default to the paper's miniature (6 layers x 512, 4 heads of 128, T 1024, LLaMA-2's 32000 ids) and
# can be changed through the environment: STEPS (1000), ADAPT_STEPS (200), BATCH (16 sequences per step),
# D_MODEL (512), LAYERS (6), HEADS (4), D_FFN (4 x D_MODEL), VOCAB (32000), SEQ_LEN (1024), EOS_ID (2),
# EVAL_BATCHES (32 windows), RECALL_NEEDLES (200), DEVICE (auto), BIN (build-gpu/ratplus when built, else
# build/ratplus); MORE_PATTERNS (patterns evaluated and recalled beside dense, dilated(16) and dilated(64),
# separated by spaces) and TOPK_PATTERNS (default "topk:B=64,K=4 topk:B=64,K=4,D=16"), evaluated on DEVICE
# like the others.
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: bash bench/science.sh DATA_DIR [OUT]" >&2; exit 2; }
ls "$1"/train_*.bin "$1"/val_*.bin >/dev/null 2>&1 ||
  { echo "science.sh: $1 holds no train_*.bin and val_*.bin shards" >&2; exit 2; }
data=$(cd "$1" && pwd)
mkdir -p "${2:-science-out}"
out=$(cd "${2:-science-out}" && pwd)
[[ -n ${BIN:-} ]] && BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
cd "$(dirname "$0")/.."
bin=${BIN:-build/ratplus}
[[ -z ${BIN:-} && -x build-gpu/ratplus ]] && bin=build-gpu/ratplus
# The figures need matplotlib: the first python3 on the PATH when it has it, else the distribution's.
py=python3
python3 -c 'import matplotlib' 2>/dev/null || py=/usr/bin/python3
steps=${STEPS:-1000} adapt_steps=${ADAPT_STEPS:-200} batch=${BATCH:-16} d=${D_MODEL:-512} layers=${LAYERS:-6}
heads=${HEADS:-4} vocab=${VOCAB:-32000} seq=${SEQ_LEN:-1024} device=${DEVICE:-auto}
precision=fp32  # bf16 on a GPU, as the CPU backend computes in f32 alone
[[ $device != cpu ]] && nvidia-smi -L >/dev/null 2>&1 && precision=bf16
ffn=${D_FFN:-$((4 * d))} eval_batches=${EVAL_BATCHES:-32} needles=${RECALL_NEEDLES:-200}
# shellcheck disable=SC2206  # the pattern lists are words
patterns=(dense dilated:D=16 dilated:D=64 ${MORE_PATTERNS:-})
# shellcheck disable=SC2206
topk=(${TOPK_PATTERNS:-topk:B=64,K=4 topk:B=64,K=4,D=16})
start=$(date +%s)

common=(--config configs/tiny.yaml model.vocab_size="$vocab" model.d_model="$d" model.n_layers="$layers"
  model.n_heads="$heads" model.d_ffn="$ffn" "data.train=$data/train_*.bin" "data.val=$data/val_*.bin"
  data.seq_len="$seq" data.eos_id="${EOS_ID:-2}" data.order=random train.global_batch="$batch"
  train.micro_batch="$batch" train.arl_dilation=64 train.log_every=100 train.val_every=0 optim.lr=1e-3
  checkpoint.every=0 checkpoint.keep=1 runtime.device="$device" runtime.precision="$precision" metrics.listen="")
# The three models: name and the overrides that make it.
models=("attention-dense model.recurrence=false train.objective=dense"
  "attention-joint model.recurrence=false train.objective=joint"
  "ratplus-joint model.recurrence=true train.objective=joint")
evaluate() {  # CHECKPOINT JSON DEVICE PATTERN...
  local checkpoint=$1 json=$2 on=$3
  shift 3
  local args=()
  for p in "$@"; do args+=(--pattern "$p"); done
  "$bin" eval --checkpoint "$checkpoint" --data "$data"/val_*.bin --seq-len "$seq" --batches "$eval_batches" \
    --eos-id "${EOS_ID:-2}" --device "$on" "${args[@]}" --json "$json" >/dev/null
}
pipeline() {  # NAME OVERRIDES: trains, evaluates and adapts one model; its log is OUT/NAME.log
  local name=$1 overrides=$2 dir=$out/$1
  mkdir -p "$dir"
  # shellcheck disable=SC2086  # the overrides are words
  "$bin" train "${common[@]}" $overrides train.steps="$steps" checkpoint.dir="$dir/base" \
    train.metrics_jsonl="$dir/base.jsonl" || return 1
  local base adapted
  base=$(printf '%s/base/step_%08d.h5' "$dir" "$steps")
  evaluate "$base" "$dir/eval.json" "$device" "${patterns[@]}" || return 1
  evaluate "$base" "$dir/topk.json" "$device" "${topk[@]}" || return 1
  "$bin" eval --task recall --checkpoint "$base" --data "$data"/val_*.bin --seq-len "$seq" \
    --needles "$needles" --device "$device" "${patterns[@]/#/--pattern=}" --json "$dir/recall.json" >/dev/null ||
    return 1
  # shellcheck disable=SC2086
  "$bin" train "${common[@]}" $overrides train.objective=adapt train.pattern=dilated:D=16 train.init_from="$base" \
    train.steps="$adapt_steps" optim.warmup=0 checkpoint.dir="$dir/adapted" train.metrics_jsonl="$dir/adapted.jsonl" ||
    return 1
  adapted=$(printf '%s/adapted/step_%08d.h5' "$dir" "$adapt_steps")
  evaluate "$adapted" "$dir/adapted.json" "$device" dense dilated:D=16
}
# The three models are small for one GPU: their pipelines run side by side.
pids=()
for model in "${models[@]}"; do
  read -r name overrides <<<"$model"
  echo "science.sh: $name (log: $out/$name.log)" >&2
  pipeline "$name" "$overrides" >"$out/$name.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!models[@]}"; do
  wait "${pids[$i]}" && continue
  name=${models[$i]%% *}
  echo "science.sh: $name failed; the end of $out/$name.log:" >&2
  tail -5 "$out/$name.log" >&2
  failed=1
done
((failed == 0)) || exit 1

seconds=$(($(date +%s) - start))
python3 - "$out" "$seconds" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$bin" <<'PY'
import json, os, sys
out, seconds, commit, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
models = ["attention-dense", "attention-joint", "ratplus-joint"]
rows, table = [], []
def losses(path):
    return {r["pattern"]: r["loss"] for r in json.load(open(path))["results"]}
for m in models:
    base = losses(os.path.join(out, m, "eval.json"))
    topk = losses(os.path.join(out, m, "topk.json"))
    adapted = losses(os.path.join(out, m, "adapted.json"))
    recall = {}
    for r in json.load(open(os.path.join(out, m, "recall.json")))["results"]:
        recall.setdefault(r["pattern"], []).append(r)
    row = {"model": m, "loss": base, "topk_loss": topk, "adapted_loss": adapted,
           "recall_exact_match": {p: sum(r["exact_match"] * r["n"] for r in rs) / sum(r["n"] for r in rs)
                                  for p, rs in recall.items()},
           "recall_value_logprob": {p: sum(r["value_logprob"] * r["n"] for r in rs) / sum(r["n"] for r in rs)
                                    for p, rs in recall.items()}}
    rows.append(row)
    for p, v in list(base.items()) + list(topk.items()):
        table.append({"model": m, "pattern": p, "loss": v})
    for p, v in adapted.items():
        table.append({"model": m, "pattern": "adapted " + p, "loss": v})
json.dump({"commit": commit, "seconds": seconds, "binary": binary, "rows": table, "models": rows},
          open(os.path.join(out, "science.json"), "w"), indent=2)
patterns = list(rows[0]["loss"])
topks = list(rows[0]["topk_loss"])
head = (["model"] + ["loss " + p for p in patterns] + ["gap D=64"] + ["loss " + p for p in topks] +
        ["adapted dilated:D=16", "recall EM dense", "recall EM dilated:D=64"])
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
for r in rows:
    cells = [r["model"]] + ["%.3f" % r["loss"][p] for p in patterns]
    cells.append("%+.3f" % (r["loss"]["dilated:D=64"] - r["loss"]["dense"]))
    cells += ["%.3f" % r["topk_loss"][p] for p in topks]
    cells.append("%.3f" % r["adapted_loss"]["dilated:D=16"])
    cells += ["%.2f" % r["recall_exact_match"].get(p, float("nan")) for p in ("dense", "dilated:D=64")]
    lines.append("| " + " | ".join(cells) + " |")
text = "\n".join(lines) + "\n\ncommit %s, %d s wall time\n" % (commit, seconds)
open(os.path.join(out, "science.md"), "w").write(text)
print(text)
PY
if "$py" -c 'import matplotlib' 2>/dev/null; then
  labels=()
  for model in "${models[@]}"; do labels+=(--label "${model%% *}"); done
  "$py" tools/plot_runs.py curves --out "$out/loss_curves.png" "$out"/{attention-dense,attention-joint,ratplus-joint}/base.jsonl \
    "${labels[@]}" --title "training loss (dense and sparse passes)"
  "$py" tools/plot_runs.py bars --out "$out/losses.png" "$out/science.json" --title "validation loss by pattern"
else
  echo "science.sh: no matplotlib (apt-get install python3-matplotlib): no figures" >&2
fi
