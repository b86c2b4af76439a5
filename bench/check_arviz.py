#!/usr/bin/env python3
"""Reads the Stan CSV that `ppl sample --out` writes with ArviZ's
from_cmdstan, and compares ArviZ's summary (mean, sd, bulk/tail ESS, rank
R-hat) with ppl's own (--summary JSON).

usage: python3 bench/check_arviz.py draws.csv [draws_2.csv ...] --summary S.json
"""
import json
import sys

import arviz as az

args = sys.argv[1:]
summary_path = args[args.index("--summary") + 1]
files = [a for a in args if a.endswith(".csv")]
idata = az.from_cmdstan(posterior=files)
ref = az.summary(idata, kind="all", round_to="none")
ours = json.load(open(summary_path))["summary"]
worst = {}
print("%-14s %10s %10s %10s %10s %9s %9s" % ("name", "mean", "az mean", "ess_bulk", "az ess", "r_hat", "az r_hat"))
for name, row in ref.iterrows():
    # ArviZ names theta.1 as theta[0]
    key = name
    if key not in ours:
        continue
    o = ours[key]
    print("%-14s %10.4f %10.4f %10.1f %10.1f %9.4f %9.4f" % (name, o["mean"], row["mean"], o["ess_bulk"],
                                                             row["ess_bulk"], o["r_hat"], row["r_hat"]))
    for k, a in (("mean", "mean"), ("ess_bulk", "ess_bulk"), ("ess_tail", "ess_tail"), ("r_hat", "r_hat")):
        rel = abs(o[k] - row[a]) / max(abs(row[a]), 1e-12)
        worst[k] = max(worst.get(k, 0), rel)
print("largest relative differences:", {k: "%.2g" % v for k, v in worst.items()})
