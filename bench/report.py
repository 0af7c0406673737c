#!/usr/bin/env python3
"""bench/compare.sh's rows as Markdown: medians per tool, and rdptrace's ratios to the other tool."""
import re
import statistics
import sys
from collections import OrderedDict

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
groups = OrderedDict()
aes = {}
for group, name, wall, cpu, user, sys_, rss, code in rows:
    if group == "aes":
        aes[name] = float(wall)
        continue
    tool = re.sub(r"-\d+$", "", name)
    groups.setdefault(group, OrderedDict()).setdefault(tool, []).append(
        (float(wall), float(cpu), int(rss), int(code))
    )

print("| group | tool | runs | wall s (median) | CPU s (median) | peak RSS MB (max) | exit codes |")
print("|---|---|---|---|---|---|---|")
med = {}
for group, tools in groups.items():
    for tool, runs in tools.items():
        w = statistics.median(r[0] for r in runs)
        c = statistics.median(r[1] for r in runs)
        m = max(r[2] for r in runs) / 1024
        codes = ",".join(sorted({str(r[3]) for r in runs}))
        med[(group, tool)] = (w, c, m)
        print(f"| {group} | {tool} | {len(runs)} | {w:.3f} | {c:.3f} | {m:.1f} | {codes} |")

print()
print("| comparison | wall ratio | CPU ratio | memory ratio |")
print("|---|---|---|---|")
for group, tools in groups.items():
    names = list(tools)
    ours = [t for t in names if t.startswith("rdptrace")]
    theirs = [t for t in names if not t.startswith("rdptrace")]
    for a in ours:
        for b in theirs:
            wa, ca, ma = med[(group, a)]
            wb, cb, mb = med[(group, b)]
            r = lambda x, y: f"{y / x:.1f}x" if x > 0 else "n/a"
            print(f"| {group}: {b} / {a} | {r(wa, wb)} | {r(ca, cb)} | {r(ma, mb)} |")

def median_of(group, tool):
    return med.get((group, tool))

speedups = []
for group in ("threads", "threads-keylog"):
    suffix = "-keylog" if group.endswith("keylog") else ""
    one = median_of(group, f"rdptrace-threads1{suffix}")
    many = median_of(group, f"rdptrace-threadsN{suffix}")
    if one and many and many[0] > 0:
        speedups.append(f"| {group}: one worker / one per core | {one[0] / many[0]:.2f}x |")
    halves = median_of(group, f"rdptrace-halves{suffix}")
    if one and halves and halves[0] > 0:
        speedups.append(
            f"| {group}: one worker / two processes on the halves at once (the ceiling) | {one[0] / halves[0]:.2f}x |"
        )
if speedups:
    print()
    print("| threaded replay (wall time) | speedup |")
    print("|---|---|")
    print("\n".join(speedups))

rate, size = aes.get("aes-256-gcm-bytes-per-s"), aes.get("capture-bytes")
if rate and size:
    gcm = size / rate
    print()
    print(f"AES-256-GCM (openssl speed, one core): {rate / 1e9:.2f} GB/s; the capture's {size / 1e9:.2f} GB in {gcm:.2f} s.")
    print()
    print("| decryption cost | CPU s with the key log | CPU s without + AES-GCM of the bytes | ratio |")
    print("|---|---|---|---|")
    for suffix in ("1", "N"):
        k = median_of("threads-keylog", f"rdptrace-threads{suffix}-keylog")
        n = median_of("threads", f"rdptrace-threads{suffix}")
        if k and n:
            floor = n[1] + gcm
            label = "one worker" if suffix == "1" else "one per core"
            print(f"| {label} | {k[1]:.2f} | {floor:.2f} | {k[1] / floor:.2f}x |")
