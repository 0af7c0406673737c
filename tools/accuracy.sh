#!/usr/bin/env bash
# How often the replay of a capture without its secrets reaches the answer of the same capture with them:
# per source, the sessions that agree (the keyed verdict's phase is the one named, or one of those left
# open, and a Set Error Info is claimed only when there was one), those that agree but leave two answers
# open, and those that do not agree. The numbers of ACCURACY.md.
#
#   tools/accuracy.sh WORKDIR [RDPTRACE_BINARY]
#
# Sources: every scenario of the built-in target (`rdptrace demo`) under --security auto, nla and tls with
# TLS 1.3 and 1.2; xrdp and FreeRDP's shadow server when the lab is up (lab/lab env); the public captures
# of ../shared/captures/public with their published keys.
set -uo pipefail
work=${1:?usage: tools/accuracy.sh WORKDIR [RDPTRACE_BINARY]}
bin=${2:-target/release/rdptrace}
root=$(cd "$(dirname "$0")/.." && pwd)
shared="$root/../shared/captures/public"
mkdir -p "$work"

# compare SOURCE CAPTURE SECRETS...: one line per session, "SOURCE agree|open|differ CAPTURE detail".
compare() {
  local source=$1 capture=$2; shift 2
  python3 - "$bin" "$source" "$capture" "$@" <<'EOF'
import json, subprocess, sys
binary, source, capture, *secrets = sys.argv[1:]
def sessions(args):
    out = subprocess.run([binary, 'replay', capture, '--json', *args], capture_output=True, text=True).stdout
    docs = [json.loads(l) for l in out.splitlines() if l.startswith('{')]
    return {(d.get('client_addr'), d.get('server_addr')): d['verdict'] for d in docs}
keyed, plain = sessions(secrets), sessions([])
for addrs, k in keyed.items():
    p = plain.get(addrs)
    if p is None:
        print(source, 'differ', capture, 'missing without secrets'); continue
    # A verdict's phase is null once the connection reached the active state; the readings say "active".
    phase = lambda v: v['phase'] or 'active'
    open_phases = {phase(p)} | set((p.get('inferred') or {}).get('phases', []))
    either = bool(p.get('mstsc_either'))
    sei_k, sei_p = k['cause'] == 'server_error_info', p['cause'] == 'server_error_info'
    ok = phase(k) in open_phases and (sei_k == sei_p or (sei_k and either)) \
        and not (k['ok'] and not p['ok'] and len(open_phases) == 1)
    verdict = 'differ' if not ok else ('open' if len(open_phases) > 1 or either else 'agree')
    print(source, verdict, capture, f"keyed {phase(k)}/{k['cause']}, plain {sorted(map(str, open_phases))}/{p['cause']}")
EOF
}

{
  mapfile -t scenarios < <("$bin" scenarios --json | python3 -c 'import json,sys; [print(json.loads(l)["name"]) for l in sys.stdin if l.strip()]')
  for security in auto nla tls; do
    for tls in 1.3 1.2; do
      dir="$work/serve-$security-$tls"
      mkdir -p "$dir"
      for s in "${scenarios[@]}"; do
        # Through the built-in RD Gateway the RDP session is inside the gateway's HTTPS: without secrets the
        # replay names that connection but does not read the RDP inside it.
        case $s in gateway-*) continue ;; esac
        "$bin" demo "$s" --security "$security" --tls-max "$tls" \
          --pcap "$dir/$s.pcapng" --keylog "$dir/$s.keys" >/dev/null 2>&1
        [ -s "$dir/$s.keys" ] && compare "serve/$security/tls$tls" "$dir/$s.pcapng" --keylog "$dir/$s.keys"
      done
    done
  done
  if env=$("$root/lab/lab" env 2>/dev/null); then
    eval "$env"
    dir="$work/lab"
    mkdir -p "$dir"
    for host in ${RDPTRACE_LAB_HOSTS:-}; do
      case $host in xrdp* | shadow* | weston*) ;; *) continue ;; esac
      var=RDPTRACE_LAB_$(echo "$host" | tr 'a-z-' 'A-Z_')
      RDPTRACE_PASSWORD=$RDPTRACE_LAB_PASSWORD "$bin" probe "${!var}" -u "$RDPTRACE_LAB_USER" \
        --pcap "$dir/$host.pcapng" --keylog "$dir/$host.keys" >/dev/null 2>&1
      [ -s "$dir/$host.keys" ] && compare "lab/$host" "$dir/$host.pcapng" --keylog "$dir/$host.keys"
    done
  fi
  if [ -d "$shared" ]; then
    compare public "$shared/wireshark-wiki/win2k19-joined.eth.pcapng" --rsa-key "$shared/keys/wireshark-wiki-ws-credssp.key"
    compare public "$shared/wireshark-wiki/TSRemoteGuardCreds.eth.pcapng" --rsa-key "$shared/keys/wireshark-wiki-ws-credssp.key"
    compare public "$shared/wireshark-wiki/freerdp-client-krb5.pcapng" --rsa-key "$shared/keys/wireshark-wiki-ws-credssp.key"
    compare public "$shared/wireshark-wiki/rdp-ssl.pcap.gz" --rsa-key "$shared/keys/wireshark-wiki-rdp-ssl.key"
    compare public "$shared/freerdp-old/rdp_tls_ntlmssp_access_denied.pcap" --rsa-key "$shared/keys/freerdp-old-server.key"
  fi
} >"$work/sessions.txt"

echo "source                  sessions  agree  open  differ"
awk '{ n[$1]++; c[$1" "$2]++ } END { for (s in n) printf "%-22s %9d %6d %5d %7d\n", s, n[s], c[s" agree"], c[s" open"], c[s" differ"] }' \
  "$work/sessions.txt" | sort
grep ' differ ' "$work/sessions.txt" || true
