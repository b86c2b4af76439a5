#!/usr/bin/env python3
"""hmm_pomegranate.py - pomegranate 1.1 (PyTorch; float32, its only working
dtype for DenseHMM here) on the workloads of bench/bench_hmm.c (issue: HMM):
ns per time step of log_probability (forward), predict_proba
(forward-backward) and seconds per Baum-Welch iteration (fit, max_iter = 3,
tol = 0: three iterations unless the fit stops earlier) for Categorical emissions over V = 10 symbols, random parameters,
random symbols; one long sequence (T = 10^4, shorter for large K: its cost
is linear in T) and 50 sequences of 100 (one [50, 100, 1] tensor).  Process
CPU time, one torch thread, medians of 3 runs (1 for K >= 64).  pomegranate
has no Viterbi.  pomegranate imports apricot-select (which needs numba) for
its k-means initialization only; a stand-in module takes its place here (the
timed code does not use it).  Output lines as bench_hmm.c's.
usage: hmm_pomegranate.py [K]
"""
import os
import sys
import time
import types

os.environ.setdefault("OMP_NUM_THREADS", "1")
ap = types.ModuleType("apricot")
ap.FacilityLocationSelection = ap.FeatureBasedSelection = object
sys.modules.setdefault("apricot", ap)
import numpy as np  # noqa: E402
try:
    import torch  # noqa: E402
    from pomegranate.distributions import Categorical  # noqa: E402
    from pomegranate.hmm import DenseHMM  # noqa: E402
except ImportError as err:
    print(f"# pomegranate not available: {err}")
    sys.exit(0)

torch.set_num_threads(1)
V = 10


def model(rng, K, iters=3):
    def simplex(n, m):
        p = 0.1 + rng.random((n, m))
        return torch.tensor(p / p.sum(axis=1, keepdims=True), dtype=torch.float32)
    E = simplex(K, V)
    dists = [Categorical(E[k:k + 1].clone()) for k in range(K)]
    return DenseHMM(dists, edges=simplex(K, K), starts=simplex(1, K)[0], max_iter=iters,
                    tol=0.0, verbose=False)


def timed(fn, reps):
    ts = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return float(np.median(ts))


def main():
    only = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    rng = np.random.default_rng(2026)
    print("# measure K shape ns_per_step (baum_welch: seconds per iteration)")
    for K in (2, 3, 8, 32, 64, 256):
        if only and K != only:
            continue
        for shape in ("long", "50x100"):
            h = model(rng, K)
            if shape == "long":
                T = int(min(10000, max(500, 1e6 / K ** 2)))
                X = torch.tensor(rng.integers(0, V, size=(1, T, 1)))
                name = f"1x{T}"
            else:
                X = torch.tensor(rng.integers(0, V, size=(50, 100, 1)))
                name = shape
            steps = X.shape[0] * X.shape[1]
            reps = 3 if K < 64 else 1
            for what, fn in (("pomegranate_forward", lambda: h.log_probability(X)),
                             ("pomegranate_forward_backward", lambda: h.predict_proba(X))):
                print(f"{what} {K} {name} {timed(fn, reps) / steps * 1e9:.1f} ns", flush=True)

            def fit():
                g = model(np.random.default_rng(5), K)
                g.fit(X)
            print(f"pomegranate_baum_welch_iter {K} {name} {timed(fit, reps) / 3:.6f} s", flush=True)


if __name__ == "__main__":
    main()
