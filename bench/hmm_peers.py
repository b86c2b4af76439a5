#!/usr/bin/env python3
"""hmm_peers.py - hmmlearn on the workloads of bench/bench_hmm.c (issue: HMM).

CategoricalHMM with K states and V = 10 symbols, random parameters and data
simulated from them; ns per time step of score (forward), predict_proba
(forward-backward), decode (Viterbi) and seconds per Baum-Welch iteration
(fit with every parameter re-estimated, tol = -inf, 3 iterations).  One long
sequence (T = 10^5, shortened for large K so that a call stays near a second:
hmmlearn is linear in T, so ns per step is unaffected) and 50 sequences of
100.  Times are process CPU time (time.process_time), as in bench_hmm.c
(thread CPU time): the benchmark machine is shared.  K >= 64: one run each, no warm-up (hmmlearn takes seconds there).
Both of hmmlearn's implementations: "log" (the default; lines
hmmlearn_*) and "scaling" (hmmlearn_scaling_*).  Medians of 3 runs; one
thread.  Output lines as bench_hmm.c's.
usage: hmm_peers.py [K]
"""
import os
import sys
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402


def sklearn_standin():
    """hmmlearn imports four small helpers from scikit-learn.  When the
    installed scikit-learn cannot load (this venv's NumPy 2 against Debian's
    scikit-learn built for NumPy 1), these stand-ins take their place; the
    timed code, hmmlearn's C++ recursions (_hmmc), is unaffected."""
    import types

    def check_random_state(seed):
        if isinstance(seed, np.random.RandomState):
            return seed
        return np.random.RandomState(seed)

    def check_array(X, **kw):
        X = np.asarray(X)
        return X.reshape(-1, 1) if X.ndim == 1 else X

    class BaseEstimator:
        pass

    sk = types.ModuleType("sklearn")
    base = types.ModuleType("sklearn.base")
    base.BaseEstimator = BaseEstimator
    utils = types.ModuleType("sklearn.utils")
    utils.check_random_state = check_random_state
    validation = types.ModuleType("sklearn.utils.validation")
    validation.check_array = check_array
    validation.check_is_fitted = lambda *a, **k: None
    validation.check_random_state = check_random_state
    cluster = types.ModuleType("sklearn.cluster")
    sk.base, sk.utils, sk.cluster, utils.validation = base, utils, cluster, validation
    sys.modules.update({"sklearn": sk, "sklearn.base": base, "sklearn.utils": utils,
                        "sklearn.utils.validation": validation, "sklearn.cluster": cluster})


try:
    import sklearn.base  # noqa: F401,E402
except Exception:  # noqa: BLE001 - any import failure of the compiled package
    for m in [m for m in sys.modules if m.startswith("sklearn")]:
        del sys.modules[m]
    sklearn_standin()
from hmmlearn import hmm  # noqa: E402

V = 10


def model(rng, K, impl):
    def simplex(n, m):
        p = 0.1 + rng.random((n, m))
        return p / p.sum(axis=1, keepdims=True)
    h = hmm.CategoricalHMM(n_components=K, n_features=V, init_params="", params="ste",
                           n_iter=3, tol=-np.inf, implementation=impl)
    h.startprob_ = simplex(1, K)[0]
    h.transmat_ = simplex(K, K)
    h.emissionprob_ = simplex(K, V)
    return h


def timed(fn, reps=3, warm=True):
    if warm:
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.process_time()   # CPU time: the machine is shared
        fn()
        ts.append(time.process_time() - t0)
    return float(np.median(ts))


def main():
    warnings.filterwarnings("ignore")
    import logging
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    only = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    rng = np.random.default_rng(2026)
    print("# measure K shape ns_per_step (baum_welch: seconds per iteration)")
    for K in (2, 3, 8, 32, 64, 256):
        if only and K != only:
            continue
        for shape, impl in [(s, i) for s in ("long", "50x100") for i in ("log", "scaling")]:
            h = model(rng, K, impl)
            if shape == "long":
                T = int(min(100000, max(500, 1e7 / K ** 2)))
                lengths = [T]
            else:
                lengths = [100] * 50
            X, _ = h.sample(sum(lengths), random_state=1)
            steps = sum(lengths)
            reps = 3 if K < 64 else 1      # K >= 64: single runs (seconds each)
            name = f"1x{T}" if shape == "long" else shape
            tag = "hmmlearn" if impl == "log" else "hmmlearn_scaling"
            for what, fn in ((f"{tag}_forward", lambda: h.score(X, lengths)),
                             (f"{tag}_forward_backward", lambda: h.predict_proba(X, lengths)),
                             (f"{tag}_viterbi", lambda: h.decode(X, lengths))):
                print(f"{what} {K} {name} {timed(fn, reps, K < 64) / steps * 1e9:.1f} ns",
                      flush=True)

            def fit():
                g = model(np.random.default_rng(5), K, impl)
                g.fit(X, lengths)
            print(f"{tag}_baum_welch_iter {K} {name} {timed(fit, reps, K < 64) / 3:.6f} s",
                  flush=True)


if __name__ == "__main__":
    main()
