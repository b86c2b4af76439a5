#!/usr/bin/env python3
"""bench/peers/compare.py - the table of bench/mcmc_peers.sh for one model: reads the draws
and times that the ppl, rstan, NumPyro and Pyro sides left under DIR/MODEL.* and prints
time per gradient, time per leapfrog, min bulk ESS, min bulk ESS / s of sampling CPU,
time to first draw, and the agreement of the posterior means with Stan's.

ESS and MCSE come from one implementation for every side: ArviZ (rank-normalized bulk
ESS, Vehtari et al. 2021; MCSE of the mean), on each side's 4 x 1000 draws.
Agreement: z = (mean_side - mean_stan) / sqrt(mcse_side^2 + mcse_stan^2) over every
scalar; max |z| < 4 passes (with dozens of scalars |z| of 3 happens by chance).

usage: python compare.py DIR MODEL   (writes DIR/MODEL.result.md too)
"""
import csv
import json
import os
import sys

import numpy as np
import arviz as az

d, model = sys.argv[1], sys.argv[2]
P = os.path.join(d, model)


def read_stan_csv(paths):
    """ppl's Stan CSVs (comments '#'): name -> [chains, draws]; names as Stan's (x.3 -> x[3], 1-based)."""
    chains = []
    for p in paths:
        rows = [r for r in csv.reader(line for line in open(p) if not line.startswith("#"))]
        head, body = rows[0], np.array(rows[1:], float)
        chains.append({h: body[:, j] for j, h in enumerate(head) if not h.endswith("__")})
    out = {}
    for h in chains[0]:
        parts = h.split(".")
        n = parts[0] + ("[" + ",".join(parts[1:]) + "]" if len(parts) > 1 else "")
        out[n] = np.stack([c[h] for c in chains])
    return out


def read_draws(path):
    """chain, draw, scalar columns (rstan and the Python sides) -> name -> [chains, draws]."""
    rows = list(csv.reader(open(path)))
    head, body = rows[0], np.array(rows[1:], float)
    ch = body[:, 0].astype(int)
    nc = ch.max()
    return {h: body[:, j].reshape(nc, -1) for j, h in enumerate(head) if j >= 2}


def stats(draws, names):
    ds = az.from_dict(posterior={n.replace("[", "_").replace("]", "").replace(",", "_"): draws[n] for n in names})
    ess = az.ess(ds, method="bulk")
    mc = az.mcse(ds, method="mean")
    res = {}
    for n in names:
        k = n.replace("[", "_").replace("]", "").replace(",", "_")
        res[n] = (float(np.mean(draws[n])), float(np.std(draws[n], ddof=1)), float(mc[k].values), float(ess[k].values))
    return res


def times(path):
    v = {}
    for line in open(path):
        k, x = line.split()
        v[k] = float(x)
    return v


stan = read_draws(P + ".stan.draws.csv")
names = list(stan.keys())
ppl = read_stan_csv([f"{P}.ppl_{i}.csv" for i in range(1, 5)])
sides = {"ppl": ppl, "rstan": stan}
if os.path.exists(P + ".stanglm.draws.csv"):
    sides["rstan glm"] = read_draws(P + ".stanglm.draws.csv")
if os.path.exists(P + ".numpyro.draws.csv"):
    sides["NumPyro"] = read_draws(P + ".numpyro.draws.csv")
st = {k: stats(v, names) for k, v in sides.items()}

# times (seconds)
pt = open(P + ".ppl.times").read().split()       # full_cpu full_wall warm_cpu warm_wall first_cpu first_wall
ppl_samp = float(pt[0]) - float(pt[2])
ppl_grad = None
if os.path.exists(P + ".ppl.grad"):
    for line in open(P + ".ppl.grad"):
        if line.startswith("gradient, replay"):
            ppl_grad = float(line.split(":")[1].split()[0]) * 1e-9
lf_ppl = 0
ppl_sampler = 0.0  # the CSV footers' "(Sampling)" seconds: each chain's thread CPU in its sampling phase
for i in range(1, 5):
    for line in open(f"{P}.ppl_{i}.csv"):
        if line.startswith("#") and line.rstrip().endswith("seconds (Sampling)"):
            ppl_sampler += float(line.strip("# \n").split()[0])
    rows = [r for r in csv.reader(line for line in open(f"{P}.ppl_{i}.csv") if not line.startswith("#"))]
    j = rows[0].index("n_leapfrog__")
    lf_ppl += sum(int(float(r[j])) for r in rows[1:])
stt = times(P + ".stan.times")
row = {
    "ppl": dict(samp=ppl_samp, lf=lf_ppl, grad=ppl_grad, first=float(pt[4]), whole=float(pt[0]),
                sampler=ppl_sampler or None),
    "rstan": dict(samp=stt["samp_cpu"], lf=int(stt["lf_samp"]), grad=stt.get("grad_s"), first=stt["first_cpu"],
                  whole=stt["thin_cpu"], compile=stt.get("compile_cpu")),
}
if "rstan glm" in sides:
    sg = times(P + ".stanglm.times")
    row["rstan glm"] = dict(samp=sg["samp_cpu"], lf=int(sg["lf_samp"]), grad=sg.get("grad_s"), first=sg["first_cpu"],
                            whole=sg["thin_cpu"], compile=sg.get("compile_cpu"))
if "NumPyro" in sides:
    nj = json.load(open(P + ".numpyro.json"))
    row["NumPyro"] = dict(samp=nj["samp_cpu"], lf=nj["lf_samp"], grad=nj["grad_s"], first=nj["first_cpu"],
                          whole=nj["samp_cpu"] + nj["warm_cpu"],
                          compile=nj["compile_run_warmup_cpu"] + nj["compile_run_sampling_cpu"] - nj["samp_cpu"] - nj["warm_cpu"],
                          ncomp=nj["compiles_timed_runs"])
pyro = json.load(open(P + ".pyro.json")) if os.path.exists(P + ".pyro.json") else None

L = []
say = L.append
say(f"### {model}")
say("")
say("| | " + " | ".join(row) + (" | Pyro |" if pyro else " |"))
say("|---|" + "---|" * (len(row) + (1 if pyro else 0)))


def cell(fmt, side, key):
    v = row[side].get(key)
    return "-" if v is None else fmt(v)


def line(label, fn, pyro_cell=""):
    say(f"| {label} | " + " | ".join(fn(s) for s in row) + (f" | {pyro_cell} |" if pyro else " |"))


us = lambda x: f"{1e6 * x:.2f} us"
line("time per gradient (value + gradient; rstan: grad_log_prob called from R, an upper bound)", lambda s: cell(us, s, "grad"),
     us(pyro["grad_s"]) if pyro else "")
line("sampling leapfrogs (4 x 1000 draws)", lambda s: f"{row[s]['lf']:,}")
line("sampling CPU", lambda s: f"{row[s]['samp']:.3f} s")
line("time per leapfrog (sampling CPU / leapfrogs)", lambda s: us(row[s]["samp"] / row[s]["lf"]),
     f"{us(pyro['lf_s'])} ({pyro['short_run']})" if pyro else "")
mins = {s: min(st[s][n][3] for n in names) for s in row}
arg = {s: min(names, key=lambda n: st[s][n][3]) for s in row}
line("min bulk ESS (ArviZ)", lambda s: f"{mins[s]:.0f} ({arg[s]})")
esss = {s: mins[s] / row[s]["samp"] for s in row}
line("**min bulk ESS / s of sampling CPU**", lambda s: f"{esss[s]:,.0f}")
# the sampler alone, as NumPyro's timed scan (draws kept in memory, no output, no diagnostics):
# ppl's per-chain "(Sampling)" footer; NumPyro's sampling CPU; rstan's process time (an upper bound)
sampler = {s: row[s].get("sampler") or row[s]["samp"] for s in row}
line("sampler-only CPU (ppl: CSV footers' Sampling seconds; others: as above)", lambda s: f"{sampler[s]:.3f} s")
line("**min bulk ESS / s of sampler-only CPU**", lambda s: f"{mins[s] / sampler[s]:,.0f}")
line("warmup + sampling CPU (ppl: whole process)", lambda s: f"{row[s]['whole']:.2f} s")
line("min bulk ESS / s, warmup included", lambda s: f"{mins[s] / row[s]['whole']:,.0f}")
line("time to first draw (CPU)", lambda s: f"{row[s]['first']:.3f} s")
line("compile (CPU)", lambda s: cell(lambda x: f"{x:.1f} s", s, "compile"))
zs = {}
for s in row:
    if s == "rstan":
        continue
    z = [(st[s][n][0] - st["rstan"][n][0]) / np.hypot(st[s][n][2], st["rstan"][n][2]) for n in names]
    zs[s] = (float(np.max(np.abs(z))), names[int(np.argmax(np.abs(z)))])
line("max abs z of the means vs rstan", lambda s: "-" if s == "rstan" else f"{zs[s][0]:.2f} ({zs[s][1]})")
say("")
r_stan = esss["ppl"] / esss["rstan"]
say(f"ppl / rstan min ESS/s: **{r_stan:.2f}x** (target 1.5x: {'met' if r_stan >= 1.5 else 'not met'})")
if "rstan glm" in row:
    r_g = esss["ppl"] / esss["rstan glm"]
    say(f"ppl / rstan with bernoulli_logit_glm min ESS/s: **{r_g:.2f}x** (target 1.5x: {'met' if r_g >= 1.5 else 'not met'})")
if "NumPyro" in row:
    r_np = esss["ppl"] / esss["NumPyro"]
    say(f"ppl / NumPyro min ESS/s: **{r_np:.1f}x** (target 10x: {'met' if r_np >= 10 else 'not met'}); "
        f"NumPyro compilations during the timed runs: {row['NumPyro']['ncomp']}")
    r_ns = (mins["ppl"] / sampler["ppl"]) / (mins["NumPyro"] / sampler["NumPyro"])
    say(f"ppl / NumPyro min ESS/s, sampler only on both sides: **{r_ns:.1f}x**")
say(f"posterior agreement: max |z| {max(v[0] for v in zs.values()):.2f} "
    f"({'PASS' if max(v[0] for v in zs.values()) < 4 else 'FAIL'}: < 4)")
if model == "mvn100":
    for s in row:
        m = max(abs(st[s][n][0]) / st[s][n][2] for n in names)
        say(f"{s}: max |mean| / MCSE against the exact mean 0: {m:.2f}; sd range "
            f"{min(st[s][n][1] for n in names):.3f}-{max(st[s][n][1] for n in names):.3f} (exact 1)")
if model == "mvn100":
    # the variance along the extreme eigenvectors of the covariance (the directions a biased
    # sampler gets wrong first: an over-dispersed NUTS inflated the top one): y = v . x, exact
    # mean 0, so E[y^2] / lambda = 1; MCSE from ArviZ on the draws of y^2.  Pyro: its short
    # run (1 chain x 100 draws after 100 warmup), a sanity check only.
    sig = np.array(json.load(open(os.path.join(d, "mvn100.json")))["Sigma"], float)
    lam, vec = np.linalg.eigh(sig)
    xs = [f"x[{i + 1}]" for i in range(sig.shape[0])]
    eig_sides = dict(sides)
    if os.path.exists(P + ".pyro.draws.csv"):
        eig_sides["Pyro (short run)"] = read_draws(P + ".pyro.draws.csv")
    for label, j in (("top", -1), ("bottom", 0)):
        for s, dr in eig_sides.items():
            y = np.tensordot(vec[:, j], np.stack([dr[n] for n in xs]), axes=1)  # [chains, draws]
            y2 = y * y / lam[j]
            mc = float(az.mcse(az.from_dict(posterior={"y2": y2}), method="mean")["y2"].values)
            say(f"{s}: variance along the {label} eigenvector (lambda {lam[j]:.3f}) / lambda: "
                f"{float(np.mean(y2)):.3f} +- {mc:.3f} (MCSE)")
if model == "logreg":
    truth = json.load(open(os.path.join(d, "logreg.json")))
    tv = [truth["alpha_true"]] + list(truth["beta_true"])
    dev = max(abs(st["rstan"][n][0] - t) / st["rstan"][n][1] for n, t in zip(names, tv))
    say(f"rstan posterior means vs the true coefficients: max |mean - true| / sd {dev:.2f}")
print("\n".join(L))
open(P + ".result.md", "w").write("\n".join(L) + "\n")
