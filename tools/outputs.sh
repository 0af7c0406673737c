#!/usr/bin/env bash
# Writes what rdptrace prints for every capture it can replay (the fixtures, the generated sessions, and
# ../shared/captures/public with and without their published keys) and for every scenario of the
# built-in target (`rdptrace demo NAME`, text and JSON), normalised for times, ports and dates, into DIR.
# Two runs on two builds, then `diff -r`, show what a change did to the outputs.
#
#   tools/outputs.sh DIR [RDPTRACE_BINARY]
set -uo pipefail
out=${1:?usage: tools/outputs.sh DIR [RDPTRACE_BINARY]}
bin=${2:-target/release/rdptrace}
root=$(cd "$(dirname "$0")/.." && pwd)
shared="$root/../shared/captures/public"
mkdir -p "$out/replay" "$out/demo"

# Times, ports, dates and byte counts of live runs change from run to run; nothing else should.
norm() {
  sed -E \
    -e 's/[0-9]+(\.[0-9]+)? ms/[t] ms/g' \
    -e 's/"[a-z_]*_ms":[0-9.e+-]+/"[t]_ms":0/g' \
    -e 's/(127\.0\.0\.1|\[::1\]):[0-9]+/\1:[port]/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/[date]/g' \
    -e 's/^( +)[0-9]+\.[0-9]+ /\1[t] /' \
    -e 's/in [0-9]+ B, out [0-9]+ B/in [n] B, out [n] B/g' \
    -e 's/"(bytes_in|bytes_out|started_at|serial|sha256|not_before|not_after|bytes|len)":("[^"]*"|[0-9]+)/"\1":[x]/g' \
    -e 's/ +\[t\]/ [t]/g' \
    -e 's/(client random|serial|sha256)[: ]+[0-9a-f:]+/\1 [x]/g'
}

replay() { # name, then args
  local name=$1; shift
  "$bin" replay "$@" >"$out/replay/$name.txt" 2>"$out/replay/$name.err"; echo "exit $?" >>"$out/replay/$name.txt"
  "$bin" replay --json "$@" >"$out/replay/$name.json" 2>>"$out/replay/$name.err"; echo "exit $?" >>"$out/replay/$name.json"
}

for f in "$root"/fixtures/*.pcapng "$root"/fixtures/synth/*.pcapng; do
  replay "fixtures-$(basename "$(dirname "$f")")-$(basename "$f")" "$f"
done
if [ -d "$shared" ]; then
  keys="$shared/keys"
  for f in $(cd "$shared" && find . -name '*.pcap' -o -name '*.pcapng' -o -name '*.gz' -o -name '*.cap' | sort); do
    name=$(echo "${f#./}" | tr / -)
    replay "public-$name" "$shared/$f"
  done
  replay "public-keyed-rdp-to-ssl" "$shared/zeek/rdp-to-ssl.pcap" --rsa-key "$keys/wireshark-wiki-rdp-ssl.key"
  for k in "$keys"/*.key; do
    for f in wireshark-wiki/rdp-ssl.pcap.gz wireshark-wiki/win2k19-joined.eth.pcapng wireshark-wiki/TSRemoteGuardCreds.eth.pcapng wireshark-wiki/freerdp-client-krb5.pcapng freerdp-old/rdp_tls_ntlmssp_access_denied.pcap zeek/rdp-to-ssl.pcap; do
      replay "public-keyed-$(basename "$k" .key)-$(echo "$f" | tr / -)" "$shared/$f" --rsa-key "$k"
    done
  done
fi

"$bin" scenarios --json | python3 -c 'import json, sys; [print(json.loads(l)["name"]) for l in sys.stdin]' | while read -r s; do
  "$bin" demo "$s" 2>&1 | norm >"$out/demo/$s.txt"; echo "exit ${PIPESTATUS[0]}" >>"$out/demo/$s.txt"
  "$bin" demo "$s" --json 2>&1 | norm >"$out/demo/$s.json"; echo "exit ${PIPESTATUS[0]}" >>"$out/demo/$s.json"
done
echo "outputs in $out"
