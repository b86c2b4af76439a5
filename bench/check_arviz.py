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

# The chains' times: ArviZ reads each CSV's "Elapsed Time" footer into the
# posterior's attributes (one entry per file, in file order); they are the
# summary JSON's "time" to the footer's 6 significant digits.
times = json.load(open(summary_path)).get("time")
attrs = idata.posterior.attrs
if times is None or "sampling_time_seconds" not in attrs:
    sys.exit("no chain times: summary %s, ArviZ attributes %s" % (times is not None, sorted(attrs)))
for key, ph in (("warmup_time_seconds", "warmup"), ("sampling_time_seconds", "sampling")):
    got = [float(v) for v in attrs[key]]
    want = times[ph]
    if len(got) != len(want) or any(abs(g - w) > 1e-5 * max(w, 1e-9) for g, w in zip(got, want)):
        sys.exit("%s: ArviZ %s, summary JSON %s" % (key, got, want))
print("chain seconds (warm-up, sampling):", ", ".join("%.4g+%.4g" % wt for wt in zip(times["warmup"], times["sampling"])))
