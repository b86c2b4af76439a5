#!/usr/bin/env python3
"""bench/peers/median_rounds.py - medians over rounds of bench/mcmc_peers.sh: reads the
MODEL.result.md table that bench/peers/compare.py left in each round's directory (run the
whole script once per round, PEERS=DIR1, DIR2, ...: the sides interleave) and prints the same
table with each cell the median over the rounds of its leading number (the rest of the cell,
e.g. which scalar had the least ESS, as in the first round), then the medians of the ppl /
rstan and ppl / NumPyro min ESS/s ratios, each round's ratio listed, and the remaining lines
(agreement, eigenvector checks) of every round.

usage: python median_rounds.py MODEL DIR1 DIR2 ...
"""
import re
import statistics
import sys

model, dirs = sys.argv[1], sys.argv[2:]
tabs, rest = [], []
num = re.compile(r"^([\s*]*)(-?[\d,]*\.?\d+)(.*)$")
for d in dirs:
    rows, other = [], []
    for line in open(f"{d}/{model}.result.md"):
        line = line.rstrip("\n")
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
        elif line.strip():
            other.append(line)
    tabs.append(rows)
    rest.append(other)


def med_cell(cells):
    ms = [num.match(c) for c in cells]
    if not all(ms):
        return cells[0]
    vals = [float(m.group(2).replace(",", "")) for m in ms]
    v = statistics.median(vals)
    s = ms[0].group(2)
    dec = len(s.split(".")[1]) if "." in s else 0
    txt = f"{v:,.{dec}f}" if "," in s or dec == 0 else f"{v:.{dec}f}"
    return ms[0].group(1) + txt + ms[0].group(3)


print(f"### {model}: medians of {len(dirs)} rounds")
print()
for i, row in enumerate(tabs[0]):
    if i == 1:
        print("|" + "---|" * len(row))
        continue
    cells = [row[0]] + [med_cell([t[i][j] for t in tabs]) for j in range(1, len(row))]
    print("| " + " | ".join(cells) + " |")
print()
for key in ("ppl / rstan min", "ppl / rstan with", "ppl / NumPyro min"):
    vals = []
    for other in rest:
        for line in other:
            if line.startswith(key):
                vals.append(float(re.search(r"\*\*([\d.]+)x\*\*", line).group(1)))
    if vals:
        print(f"{key} ESS/s: median **{statistics.median(vals):.2f}x** (rounds: "
              + ", ".join(f"{v:.2f}" for v in vals) + ")")
print()
for d, other in zip(dirs, rest):
    print(f"round {d}:")
    for line in other:
        if not line.startswith(("ppl / ", "###")):
            print("  " + line)
