#!/usr/bin/env bash
# Records the sessions the capture generator (src/synth.rs, `rdptrace-synth`) plays again:
# the probe against the built-in target, one scenario at a time, on loopback, with --pcap and
# --embed-secrets. Writes fixtures/synth/SCENARIO.pcapng. Run from the repository root after
# `cargo build --release`; the files are committed, so this is needed only to renew them.
set -euo pipefail

BIN=${RDPTRACE:-target/release/rdptrace}
OUT=fixtures/synth
PORT=${PORT:-43389}
SCENARIOS=(
  healthy
  errinfo-0x0003
  neg-hybrid-required
  tls-handshake-failure
  nla-logon-failure
  early-auth-denied
  close-in-mcs-connect
  reset-in-channel-join
  denied-connection
  close-in-capabilities
  close-in-finalization
)
# The target's published test password (src/serve/mod.rs), for the target and the probe alike.
export RDPTRACE_PASSWORD=rdptrace-test-only

mkdir -p "$OUT"
for s in "${SCENARIOS[@]}"; do
  "$BIN" serve --scenario "$s" --listen "127.0.0.1:$PORT" --once --idle-limit 5 &
  server=$!
  for _ in $(seq 1 100); do
    [ -n "$(ss -ltnH "sport = :$PORT")" ] && break
    sleep 0.05
  done
  rm -f "$OUT/$s.pcapng"
  "$BIN" probe "127.0.0.1:$PORT" --user rdptrace --watch 2 --timeout 15 \
    --pcap "$OUT/$s.pcapng" --embed-secrets >/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  echo "$s: $(stat -c %s "$OUT/$s.pcapng") bytes"
done
