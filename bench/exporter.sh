#!/usr/bin/env bash
# The exporter under a real Prometheus: TARGETS targets (default 200) scraped every INTERVAL (15 s) with
# the blackbox relabelling, for DURATION (180 s). The targets are four `rdptrace serve` scenarios
# (healthy, denied-connection, cert-expired, nla-logon-failure) listening on 0.0.0.0, each reached
# through its own loopback address (127.0.0.N), so that every target is a distinct instance; the module
# logs on with NLA and watches the active session for 1 s, the module defaults. For the run, the targets
# listen on every address (0.0.0.0, the only way one socket answers 127.0.0.N for every N): run it on a
# machine whose ports are not reachable from outside.
#
# Reports, from Prometheus's own view (scrape samples and up), the exporter's counters and /proc: scrapes
# made and failed, scrape durations, probes refused, the exporter's CPU time and peak resident memory,
# and the machine's load. Markdown on stdout and in $OUT/exporter.md. See BENCHMARKS.md.
#
# Needs: cargo build --release; packages prometheus, curl, python3. Network: loopback only.
# Every wait is bounded; only the processes started here are stopped, by their PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/rdptrace}
OUT=${OUT:-target/bench}
TARGETS=${TARGETS:-200}
INTERVAL=${INTERVAL:-15}
TIMEOUT=${TIMEOUT:-10}
DURATION=${DURATION:-180}
BASE_PORT=${BASE_PORT:-43490}
EXPORTER_PORT=${EXPORTER_PORT:-9834}
PROM_PORT=${PROM_PORT:-9891}
# The built-in target's published test password (src/serve/mod.rs): never on a command line.
PASSWORD=rdptrace-test-only

mkdir -p "$OUT"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() {
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "bench/exporter.sh: nothing answers at $1" >&2
  exit 1
}

SCENARIOS=(healthy denied-connection cert-expired nla-logon-failure)
for i in "${!SCENARIOS[@]}"; do
  RDPTRACE_PASSWORD=$PASSWORD "$BIN" serve --scenario "${SCENARIOS[$i]}" \
    --listen "0.0.0.0:$((BASE_PORT + i))" --max-connections 256 >/dev/null 2>&1 &
  PIDS+=($!)
done

printf '%s\n' "$PASSWORD" >"$WORK/pw"
cat >"$WORK/exporter.toml" <<EOF
[modules.nla]
security = "nla-ex"
user = "rdptrace"
password-file = "$WORK/pw"
allowed-targets = ["127.0.*"]
expect = ["active"]
EOF
"$BIN" exporter --listen "127.0.0.1:$EXPORTER_PORT" --config "$WORK/exporter.toml" \
  >"$WORK/exporter.out" 2>"$WORK/exporter.err" &
EXPORTER=$!
PIDS+=("$EXPORTER")
wait_http "http://127.0.0.1:$EXPORTER_PORT/metrics"

# Targets: 127.0.0.2 ... spread over the four scenarios.
targets=""
for n in $(seq 1 "$TARGETS"); do
  i=$(((n - 1) % 4))
  host=$((n / 250)).$(((n % 250) + 2))
  targets+="\"127.0.$host:$((BASE_PORT + i))\","
done
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: ${INTERVAL}s
  scrape_timeout: ${TIMEOUT}s
scrape_configs:
  - job_name: rdp
    metrics_path: /probe
    params:
      module: [nla]
    static_configs:
      - targets: [${targets%,}]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:$EXPORTER_PORT
  - job_name: rdptrace_exporter
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER_PORT"]
EOF
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >/dev/null 2>"$WORK/prometheus.err" &
PIDS+=($!)
wait_http "http://127.0.0.1:$PROM_PORT/-/ready"

ticks() { awk '{ print $14 + $15 }' "/proc/$EXPORTER/stat"; }
HZ=$(getconf CLK_TCK)
cpu0=$(ticks)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench/exporter.sh: $TARGETS targets every ${INTERVAL}s for ${DURATION}s..." >&2
sleep "$DURATION"
cpu1=$(ticks)
load1=$(cut -d' ' -f1-3 /proc/loadavg)
hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$EXPORTER/status")

q() {
  curl -fsS --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "0")'
}
W="${DURATION}s"
scrapes=$(q "sum(count_over_time(up{job=\"rdp\"}[$W]))")
down=$(q "sum(count_over_time(up{job=\"rdp\"}[$W])) - sum(sum_over_time(up{job=\"rdp\"}[$W]))")
p50=$(q "quantile(0.5, quantile_over_time(0.5, scrape_duration_seconds{job=\"rdp\"}[$W]))")
p99=$(q "max(quantile_over_time(0.99, scrape_duration_seconds{job=\"rdp\"}[$W]))")
max=$(q "max(max_over_time(scrape_duration_seconds{job=\"rdp\"}[$W]))")
success=$(q "sum(rdptrace_probe_success{job=\"rdp\"})")
refused=$(curl -fsS "http://127.0.0.1:$EXPORTER_PORT/metrics" |
  awk '/^rdptrace_exporter_requests_refused_total/ { s += $2 } END { print s + 0 }')
probes=$(curl -fsS "http://127.0.0.1:$EXPORTER_PORT/metrics" |
  awk '/^rdptrace_exporter_probes_total/ { s += $2 } END { print s + 0 }')
cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" -v d="$DURATION" \
  'BEGIN { printf "%.1f s (%.1f%% of one core)", (b - a) / hz, 100 * (b - a) / hz / d }')

{
  echo "| measure | value |"
  echo "| --- | --- |"
  echo "| targets, interval, scrape timeout | $TARGETS, ${INTERVAL} s, ${TIMEOUT} s |"
  echo "| duration | $DURATION s |"
  echo "| scrapes of the targets (Prometheus's samples of up) | $scrapes |"
  echo "| failed scrapes (up == 0) | $(awk -v d="$down" 'BEGIN { printf "%d", d }') |"
  echo "| probes run (exporter) | $probes |"
  echo "| probe requests refused (exporter) | $refused |"
  echo "| targets whose last probe succeeded | $(awk -v s="$success" 'BEGIN { printf "%d", s }') of $TARGETS (the healthy and cert-expired quarters) |"
  echo "| scrape duration, median / p99 / max | $(awk -v a="$p50" -v b="$p99" -v c="$max" 'BEGIN { printf "%.3f s / %.3f s / %.3f s", a, b, c }') |"
  echo "| exporter CPU (user + sys) | $cpu |"
  echo "| exporter peak resident memory | $((hwm / 1024)) MiB |"
  echo "| load average before / after (1, 5, 15 min) | $load0 / $load1 |"
} | tee "$OUT/exporter.md"
