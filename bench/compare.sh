#!/usr/bin/env bash
# rdptrace side by side with what users would otherwise run, in one run on this machine:
#   replay  vs  tshark -r FILE -Y rdp                       (the same generated capture)
#   replay --keylog  vs  tshark ... -o tls.keylog_file:KEYS (the same capture, decrypted)
#   probe   vs  xfreerdp +auth-only                          (rdptrace serve, healthy, on loopback)
#   fleet: probe --targets with 100/300/1000 targets at once, and 10,000 targets
#   scale: replay of a flood of 1,000,000 unanswered SYNs and of 100,000 short failed NLA attempts (text and
#          --json)  vs  tshark -r FILE -q -z conv,tcp (the comparable work: every connection, one line each)
#   threads: replay of the bulk capture on one worker thread and on one per core, with and without the key
#          log, and the ceiling (two one-thread processes at once, each on half of the sessions); openssl
#          speed -evp aes-256-gcm for the decryption's cost per byte (BENCHMARKS.md)
# Wall time, CPU time (user+sys) and peak resident memory of each, from /usr/bin/time; the results as
# Markdown on stdout and in $OUT/results.md, raw rows in $OUT/results.tsv. See BENCHMARKS.md.
#
# Needs: cargo build --release, and for the replay the capture generator (cargo build --release
# --features synth --bin rdptrace-synth, built here when missing); packages time, tshark, freerdp2-x11,
# xvfb. Network: loopback only.
# Every loop is bounded; only the processes started here are stopped, by their PIDs.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/rdptrace}
SYNTH=${SYNTH:-target/release/rdptrace-synth}
OUT=${OUT:-target/bench}
SIZE=${SIZE:-1G}              # capture size for the replay comparison
REPEAT=${REPEAT:-3}           # runs of each replay and of each fleet size
PROBES=${PROBES:-20}          # single probes of each client
FLEET=${FLEET:-"100 300 1000"}
BIG_FLEET=${BIG_FLEET:-10000}
PORT=${PORT:-43390}
DISPLAY_NUM=${DISPLAY_NUM:-97}
CORE=${CORE:-1}               # the replay runs pinned to this core (taskset), both tools
FLOOD=${FLOOD:-1000000}        # unanswered SYNs of the flood capture
SHORT=${SHORT:-100000}         # failed NLA attempts of the short-sessions capture
ONLY=${ONLY:-"replay scale threads probe fleet"}
# The built-in target's published test password (src/serve/mod.rs): never on a command line.
export RDPTRACE_PASSWORD=rdptrace-test-only

mkdir -p "$OUT"
TSV=$OUT/results.tsv
: >"$TSV"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT

# measure GROUP NAME CMD...: one run; a row "group name wall cpu user sys maxrss_kb exit" in $TSV.
# stdout goes to $OUT/NAME.out, or with SINK=lines is counted into $OUT/NAME.lines (a flood's JSON is large),
# or with SINK=null goes to /dev/null (rdptrace's own work, without a reader). The wall time is the shell's
# clock around the run, to the millisecond: /usr/bin/time gives it to 10 ms, a few percent of a 0.3 s run.
measure() {
  local group=$1 name=$2
  shift 2
  local t=$OUT/time.$$
  local code=0
  local start=$EPOCHREALTIME
  case "${SINK:-file}" in
    file) /usr/bin/time -f '%e %U %S %M' -o "$t" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || code=$? ;;
    lines) /usr/bin/time -f '%e %U %S %M' -o "$t" "$@" 2>"$OUT/$name.err" | wc -l >"$OUT/$name.lines" || code=$? ;;
    null) /usr/bin/time -f '%e %U %S %M' -o "$t" "$@" >/dev/null 2>"$OUT/$name.err" || code=$? ;;
  esac
  local end=$EPOCHREALTIME
  read -r _ user sys rss < <(tail -n 1 "$t")
  wall=$(awk -v a="${start/,/.}" -v b="${end/,/.}" 'BEGIN { printf "%.3f", b - a }')
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$group" "$name" "$wall" "$cpu" "$user" "$sys" "$rss" "$code" >>"$TSV"
  printf '%-28s wall %6ss cpu %6ss rss %7s KB exit %s\n' "$name" "$wall" "$cpu" "$rss" "$code" >&2
  rm -f "$t"
}

synth() {
  [ -x "$SYNTH" ] || cargo build --release --locked --features synth --bin rdptrace-synth
  "$SYNTH" "$@"
}

wait_port() {
  for _ in $(seq 1 200); do
    [ -n "$(ss -ltnH "sport = :$1")" ] && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  return 1
}

{
  echo "load before: $(cat /proc/loadavg)"
} >"$OUT/load.txt"

# ---- replay ------------------------------------------------------------------------------------------
if [[ " $ONLY " == *" replay "* ]]; then
  CAP=$OUT/replay-$SIZE.pcapng
  KEYS=$OUT/replay-$SIZE.keys
  if [ ! -s "$CAP" ] || [ ! -s "$KEYS" ]; then
    [ -x "$SYNTH" ] || cargo build --release --locked --features synth --bin rdptrace-synth
    "$SYNTH" "$CAP" --size "$SIZE" --keylog "$KEYS" >"$OUT/replay-$SIZE.json"
  fi
  cat "$CAP" >/dev/null # into the page cache for every run alike
  for i in $(seq 1 "$REPEAT"); do
    measure replay "rdptrace-replay-$i" taskset -c "$CORE" "$BIN" replay "$CAP"
    measure replay-keylog "rdptrace-replay-keylog-$i" taskset -c "$CORE" "$BIN" replay "$CAP" --keylog "$KEYS"
  done
  measure replay "tshark-rdp" taskset -c "$CORE" tshark -r "$CAP" -Y rdp
  # tshark 4.0 does not hand an RDP stream to TLS after the Connection Confirm: -d says it is TLS.
  measure replay-keylog "tshark-rdp-keylog" taskset -c "$CORE" tshark -r "$CAP" -d tcp.port==3389,tls \
    -o "tls.keylog_file:$KEYS" -Y rdp
fi

# ---- scale: floods and short sessions -----------------------------------------------------------------
if [[ " $ONLY " == *" scale "* ]]; then
  FLOOD_CAP=$OUT/flood-$FLOOD.pcapng
  SHORT_CAP=$OUT/short-$SHORT.pcapng
  # The flood with two real sessions in it (a healthy one, a refused logon), so that they must be found.
  [ -s "$FLOOD_CAP" ] || synth "$FLOOD_CAP" --flood "$FLOOD" --sessions 2 --template healthy \
    --template nla-logon-failure --bulk 0-0 >"$OUT/flood.json"
  # Brute force: every attempt to one server, a real NLA handshake refused.
  [ -s "$SHORT_CAP" ] || synth "$SHORT_CAP" --sessions "$SHORT" --template nla-logon-failure --one-server \
    --bulk 0-0 --concurrent 256 >"$OUT/short.json"
  for cap in "$FLOOD_CAP" "$SHORT_CAP"; do
    g=$(basename "$cap" .pcapng)
    cat "$cap" >/dev/null
    for i in $(seq 1 "$REPEAT"); do
      SINK=lines measure "$g" "rdptrace-text-$i" taskset -c "$CORE" "$BIN" replay "$cap" --threads 1
      SINK=lines measure "$g" "rdptrace-json-$i" taskset -c "$CORE" "$BIN" replay "$cap" --threads 1 --json
      SINK=null measure "$g" "rdptrace-json-devnull-$i" taskset -c "$CORE" "$BIN" replay "$cap" --threads 1 --json
      SINK=lines measure "$g" "rdptrace-threads-$i" "$BIN" replay "$cap"
    done
    SINK=lines measure "$g" "tshark-conv-tcp" taskset -c "$CORE" tshark -r "$cap" -q -z conv,tcp
  done
fi

# ---- threads: the bulk capture on one worker and on one per core ----------------------------------------
if [[ " $ONLY " == *" threads "* ]]; then
  CAP=$OUT/replay-$SIZE.pcapng
  KEYS=$OUT/replay-$SIZE.keys
  if [ ! -s "$CAP" ] || [ ! -s "$KEYS" ]; then
    synth "$CAP" --size "$SIZE" --keylog "$KEYS" >"$OUT/replay-$SIZE.json"
  fi
  # What the machine allows two workers: the capture's sessions split in two files by the client's port
  # (the generator gives a client its own address and port), each replayed on one thread by a process of
  # its own, both at once. Nothing is shared between them, so this is the ceiling of any threaded replay.
  HALF='(tcp.dstport == 3389 and tcp.srcport & 1) or (tcp.srcport == 3389 and tcp.dstport & 1)'
  [ -s "$OUT/half-a.pcapng" ] || tshark -r "$CAP" -Y "$HALF" -w "$OUT/half-a.pcapng" 2>/dev/null
  [ -s "$OUT/half-b.pcapng" ] || tshark -r "$CAP" -Y "!($HALF)" -w "$OUT/half-b.pcapng" 2>/dev/null
  # bash -c 'script' BIN A B [replay options]
  HALVES='"$0" replay "$1" --threads 1 "${@:3}" >/dev/null & "$0" replay "$2" --threads 1 "${@:3}" >/dev/null; wait'
  halves=(bash -c "$HALVES" "$BIN" "$OUT/half-a.pcapng" "$OUT/half-b.pcapng")
  # The files leave the page cache and come back by one sequential read each, so that they are cached the
  # same way (how a file came into the cache, by small writes or by readahead, moved these timings by 20%).
  python3 -c 'import os, sys
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' \
    "$CAP" "$OUT/half-a.pcapng" "$OUT/half-b.pcapng"
  cat "$CAP" "$OUT/half-a.pcapng" "$OUT/half-b.pcapng" >/dev/null
  for i in $(seq 1 "$REPEAT"); do
    measure threads "rdptrace-threads1-$i" "$BIN" replay "$CAP" --threads 1
    measure threads "rdptrace-threadsN-$i" "$BIN" replay "$CAP"
    measure threads "rdptrace-halves-$i" "${halves[@]}"
    measure threads-keylog "rdptrace-threads1-keylog-$i" "$BIN" replay "$CAP" --threads 1 --keylog "$KEYS"
    measure threads-keylog "rdptrace-threadsN-keylog-$i" "$BIN" replay "$CAP" --keylog "$KEYS"
    measure threads-keylog "rdptrace-halves-keylog-$i" "${halves[@]}" --keylog "$KEYS"
  done
  # AES-256-GCM on one core, the fastest implementation here (OpenSSL's, with AES-NI where the CPU has it):
  # bytes per second on 16 KiB blocks (TLS records are up to 16 KiB), and the bytes the replay decrypts.
  openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 2>/dev/null |
    awk 'tolower($1) ~ /^aes-256-gcm/ { v = $NF; sub(/k$/, "", v); printf "%.0f\n", v * 1000 }' >"$OUT/aes-gcm.bytes-per-s"
  stat -c %s "$CAP" >"$OUT/replay-$SIZE.bytes"
  printf 'aes\taes-256-gcm-bytes-per-s\t%s\t0\t0\t0\t0\t0\n' "$(cat "$OUT/aes-gcm.bytes-per-s")" >>"$TSV"
  printf 'aes\tcapture-bytes\t%s\t0\t0\t0\t0\t0\n' "$(cat "$OUT/replay-$SIZE.bytes")" >>"$TSV"
fi

# ---- the target for the probes ------------------------------------------------------------------------
if [[ " $ONLY " == *" probe "* || " $ONLY " == *" fleet "* ]]; then
  "$BIN" serve --scenario healthy --listen "127.0.0.1:$PORT" --max-connections 1100 --idle-limit 10 \
    >"$OUT/serve.out" 2>"$OUT/serve.err" &
  PIDS+=($!)
  wait_port "$PORT"
fi

# ---- probe ---------------------------------------------------------------------------------------------
if [[ " $ONLY " == *" probe "* ]]; then
  Xvfb ":$DISPLAY_NUM" -nolisten tcp >"$OUT/xvfb.log" 2>&1 &
  PIDS+=($!)
  sleep 1
  # xfreerdp 2 with +auth-only wants the password before it connects, and only /p: gives it that early:
  # this is the built-in target's published test password, not a secret, so it may show in xfreerdp's argv.
  for i in $(seq 1 "$PROBES"); do
    measure probe "rdptrace-probe-$i" "$BIN" probe "127.0.0.1:$PORT" --user rdptrace --watch 0.001
    measure probe "xfreerdp-auth-only-$i" env DISPLAY=":$DISPLAY_NUM" HOME="$PWD/$OUT" \
      xfreerdp "/v:127.0.0.1:$PORT" /u:rdptrace "/p:$RDPTRACE_PASSWORD" /cert:ignore /sec:nla +auth-only
  done
fi

# ---- fleet ---------------------------------------------------------------------------------------------
if [[ " $ONLY " == *" fleet "* ]]; then
  for n in $FLEET $BIG_FLEET; do
    f=$OUT/targets-$n.txt
    : >"$f"
    for _ in $(seq 1 "$n"); do echo "127.0.0.1:$PORT" >>"$f"; done
  done
  for n in $FLEET; do
    c=$((n < 1024 ? n : 1024))
    for i in $(seq 1 "$REPEAT"); do
      measure "fleet-$n" "fleet-$n-$i" "$BIN" probe --targets "$OUT/targets-$n.txt" --user rdptrace \
        --watch 0.001 --concurrency "$c"
    done
  done
  measure "fleet-$BIG_FLEET" "fleet-$BIG_FLEET-1" "$BIN" probe --targets "$OUT/targets-$BIG_FLEET.txt" \
    --user rdptrace --watch 0.001 --concurrency 1000
fi

echo "load after: $(cat /proc/loadavg)" >>"$OUT/load.txt"
python3 bench/report.py "$TSV" | tee "$OUT/results.md"
cat "$OUT/load.txt"
