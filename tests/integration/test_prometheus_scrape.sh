#!/usr/bin/env bash
# A real Prometheus server scrapes a training run (SPEC §10 metrics.listen): a 40-step dense run of the tiny
# config on a synthetic shard serves /metrics on loopback, Prometheus (scrape interval 1 s, its own TSDB in a
# temporary directory) scrapes it, and its HTTP API must report ratplus_tokens_total = 40 · 4 · 128 = 20480
# and ratplus_steps_total = 40 while the run lingers. Skipped when the prometheus binary is absent.
# Usage: bash test_prometheus_scrape.sh /path/to/ratplus        (prints "N passed, M failed" at the end)
set -u
source "$(dirname "$0")/lib.sh"
start_test "$@"
if ! command -v prometheus >/dev/null; then
    echo "skipped: prometheus not installed"
    exit 0
fi

STEPS=40
EXPECTED_TOKENS=$((STEPS * 4 * 128))   # steps × global_batch × seq_len
PROM_PID=""
TRAIN_PID=""
cleanup() {
    [ -n "$TRAIN_PID" ] && kill "$TRAIN_PID" 2>/dev/null
    [ -n "$PROM_PID" ] && kill "$PROM_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

check_equal() {   # check_equal NAME ACTUAL EXPECTED
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1" "got '$2', expected '$3'"; fi
}

# Two distinct free loopback ports: the training run's metrics and Prometheus's own web port.
read -r METRICS_PORT PROM_PORT < <($PY -c '
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in sockets])')

# The value of an instant query's first series, or "" (none yet, or Prometheus not answering).
query() {
    $PY - "http://127.0.0.1:$PROM_PORT/api/v1/query" "$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]})
try:
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    print(result[0]["value"][1] if result else "")
except Exception:
    print("")
EOF
}

# Waits up to $2 seconds for Prometheus's readiness endpoint.
wait_ready() {
    local deadline=$((SECONDS + $1))
    while [ $SECONDS -lt $deadline ]; do
        $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PROM_PORT/-/ready', timeout=2)" \
            2>/dev/null && return 0
        sleep 0.5
    done
    return 1
}

if "$BIN" data synth --out train.bin --tokens 200000 --vocab 256 >synth.log 2>&1; then
    ok "synthetic shard written"
else
    bad "synthetic shard written" "$(tail -5 synth.log)"
    finish
fi

cat >prometheus.yml <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ratplus
    static_configs:
      - targets: ["127.0.0.1:$METRICS_PORT"]
EOF
prometheus --config.file=prometheus.yml --storage.tsdb.path=tsdb --web.listen-address="127.0.0.1:$PROM_PORT" \
    >prometheus.log 2>&1 &
PROM_PID=$!
if wait_ready 30; then
    ok "prometheus ready on 127.0.0.1:$PROM_PORT"
else
    bad "prometheus ready on 127.0.0.1:$PROM_PORT" "$(tail -5 prometheus.log)"
    finish
fi

timeout 600 "$BIN" train --config "$REPO/configs/tiny.yaml" data.train=train.bin data.val=train.bin train.steps=$STEPS \
    train.objective=dense train.global_batch=4 train.micro_batch=4 checkpoint.dir=ckpt \
    "metrics.listen=127.0.0.1:$METRICS_PORT" metrics.linger_seconds=6 >train.log 2>&1 &
TRAIN_PID=$!

# Poll while the run trains and lingers; its end is the deadline: once it exits, Prometheus's next scrape
# fails and marks the run's series stale, so instant queries return nothing.
tokens=""
while :; do
    exited=0
    kill -0 "$TRAIN_PID" 2>/dev/null || exited=1
    tokens=$(query ratplus_tokens_total)
    if [ "$tokens" = "$EXPECTED_TOKENS" ] || [ $exited -eq 1 ]; then break; fi
    sleep 0.5
done
steps=$(query ratplus_steps_total)
check_equal "prometheus reports ratplus_tokens_total" "$tokens" "$EXPECTED_TOKENS"
check_equal "prometheus reports ratplus_steps_total" "$steps" "$STEPS"

wait "$TRAIN_PID"
train_rc=$?
TRAIN_PID=""
if [ "$train_rc" -eq 0 ]; then
    ok "ratplus train exits 0"
else
    bad "ratplus train exits 0" "exit code $train_rc: $(tail -5 train.log)"
fi
finish
