#!/usr/bin/env python3
"""log_prob throughput on 10^6 values: ppl (bench/bench_dist.c) side by side
with PyTorch CPU (one thread) and SciPy / NumPy, in one run.

Same workloads on every side: scalar parameters Normal(0.5, 1.5),
Gamma(2.5, 0.7), Beta(2, 3.5), Poisson(7.5), Categorical(probs = k+1 / 55,
k < 10), float64 values from the same formula (bench_dist.c: fill), the
median of 9 timed runs after one warm-up, ns per element; three rounds
(ppl, PyTorch, SciPy in turn) and the median over rounds.  PyTorch runs with
validate_args=False (no support check; ppl always checks the support and
returns -inf outside it), no autograd.

Usage (from the repository root, after building /tmp/bench_dist as the
header of bench/bench_dist.c says):
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /opt/bench-venv/bin/python bench/dist_peers.py [/tmp/bench_dist]
"""
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import torch
from scipy import stats

torch.set_num_threads(1)
N, REPS, K, ROUNDS = 1_000_000, 9, 10, 3
u = (np.arange(N) + 0.5) / N
X = {"Normal": 8 * u - 4, "Gamma": 10 * u, "Beta": u,
     "Poisson": (np.arange(N) % 20).astype(float), "Categorical": (np.arange(N) % K).astype(float)}
probs = (np.arange(K) + 1.0) / (K * (K + 1) / 2.0)


def median_ns(fn):
    fn()
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[REPS // 2] * 1e9 / N


def torch_fns():
    D = torch.distributions
    f64 = torch.float64
    # built by torch itself from the same formulas (no NumPy bridge)
    i = torch.arange(N, dtype=f64)
    uu = (i + 0.5) / N
    t = {"Normal": 8 * uu - 4, "Gamma": 10 * uu, "Beta": uu, "Poisson": torch.remainder(i, 20),
         "Categorical": torch.remainder(i, K)}
    s = lambda v: torch.tensor(v, dtype=f64)
    d = {"Normal": D.Normal(s(0.5), s(1.5), validate_args=False),
         "Gamma": D.Gamma(s(2.5), s(0.7), validate_args=False),
         "Beta": D.Beta(s(2.0), s(3.5), validate_args=False),
         "Poisson": D.Poisson(s(7.5), validate_args=False),
         "Categorical": D.Categorical(probs=(torch.arange(K, dtype=f64) + 1) / (K * (K + 1) / 2),
                                      validate_args=False)}
    tcat = t["Categorical"].long()   # PyTorch wants integer category indices
    out = {}
    for k in d:
        x = tcat if k == "Categorical" else t[k]
        out[k] = (lambda dist, x: (lambda: dist.log_prob(x)))(d[k], x)
    return out


def scipy_fns():
    xi = X["Categorical"].astype(np.int64)
    lp = np.log(probs)
    return {"Normal": lambda: stats.norm.logpdf(X["Normal"], 0.5, 1.5),
            "Gamma": lambda: stats.gamma.logpdf(X["Gamma"], 2.5, scale=1 / 0.7),
            "Beta": lambda: stats.beta.logpdf(X["Beta"], 2.0, 3.5),
            "Poisson": lambda: stats.poisson.logpmf(X["Poisson"], 7.5),
            "Categorical": lambda: lp[xi]}   # NumPy indexing; SciPy has no categorical


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench_dist"
    tf, sf = torch_fns(), scipy_fns()
    # ROUNDS rounds of (ppl, PyTorch, SciPy), each a median of REPS runs, and
    # the median over rounds: load changes on a shared machine hit all three
    rows = {"ppl": [], "torch": [], "scipy": []}
    for _ in range(ROUNDS):
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        rows["ppl"].append({l.split()[0]: float(l.split()[1]) for l in out.strip().splitlines()})
        with torch.no_grad():
            rows["torch"].append({k: median_ns(f) for k, f in tf.items()})
        rows["scipy"].append({k: median_ns(f) for k, f in sf.items()})
    med = {side: {k: sorted(r[k] for r in rs)[ROUNDS // 2] for k in rs[0]} for side, rs in rows.items()}
    ppl, tt, st = med["ppl"], med["torch"], med["scipy"]
    print(f"torch {torch.__version__}, scipy {__import__('scipy').__version__}, numpy {np.__version__}; "
          f"N = {N}, median over {ROUNDS} rounds of medians of {REPS}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| family | ppl ns/elt | PyTorch ns/elt | SciPy ns/elt | PyTorch / ppl | SciPy / ppl |")
    print("|---|---|---|---|---|---|")
    for k in ppl:
        print(f"| {k} | {ppl[k]:.2f} | {tt[k]:.2f} | {st[k]:.2f} | {tt[k] / ppl[k]:.2f} | "
              f"{st[k] / ppl[k]:.2f} |")


if __name__ == "__main__":
    main()
