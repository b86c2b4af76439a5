#!/usr/bin/env python3
"""bench/peers/mcmc_python.py - the NumPyro and Pyro sides of bench/mcmc_peers.sh.

usage: python mcmc_python.py numpyro|pyro MODEL DATA.json OUT
  MODEL: eight (eight schools, non-centered), logreg (N = 10,000, D = 25), mvn100
  (100-d Gaussian, AR(1) correlation 0.9); the same models as the ppl and Stan files
  beside this one, on the same data.  CPU, float64, one thread.

NumPyro: its NUTS kernel (numpyro.infer.hmc.hmc, the sample_kernel that MCMC runs,
with Stan's windowed adaptation inside it during warmup), 4 chains in turn x (1000
warmup + 1000 draws), diagonal metric, target accept 0.8, max tree depth 10, init
uniform(-2, 2) unconstrained.  Each block of 1000 iterations is one jitted lax.scan
with the data as arguments: compiled once (the first pass over the 4 chains, reported
apart as the compile run), then the same executable runs every warmup and sampling
block of the timed passes.  Checked: jax's compile log is captured during the timed
passes and the number of XLA compilations there is reported (0).  MCMC.run itself is
not used for the timing: in numpyro 0.22 it retraces and recompiles its sampling loop
on every run and every chain (sequential), even with jit_model_args=True and arrays of
identical shapes, which is what made earlier measurements unclean.  CPU time is
time.process_time() (all threads of the process; XLA is held to one thread).  Medians
of REPS (default 3; with an even REPS the upper middle: the earlier default REPS = 2 took
the slower run) timed passes.  Time to first draw: MCMC.run on a fresh object, 1
chain, no warmup, 1 draw, tracing and compilation included (the imports not).

Pyro: a full 4 x (1000 + 1000) NUTS run takes hours at its per-step overhead on this
machine, so Pyro gets the time per gradient and a short run (1 chain, 100 + 100, same
settings) for the time per leapfrog only; it gives no ESS/s.

Both: time per gradient of the potential (log density and its gradient on the
unconstrained space) at the initial point, NumPyro's inside one jitted lax.fori_loop
of 2000 evaluations (no dispatch per call), Pyro's by autograd in a Python loop.

Writes OUT.draws.csv (chain, draw, one column per scalar; Pyro: its short run's draws) and
OUT.json (times).
"""
import json
import logging
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

W = S = int(os.environ.get("PEERS_ITERS", "1000"))  # warmup = draws per chain (1000; smaller to try the script)
CHAINS = 4


def load(model, path):
    d = json.load(open(path))
    if model == "eight":
        return {"y": np.array(d["y"], float), "sigma": np.array(d["sigma"], float)}
    if model == "logreg":
        return {"X": np.array(d["X"], float), "y": np.array(d["y"], float)}
    sigma = np.array(d["Sigma"], float)
    return {"L": np.linalg.cholesky(sigma)}  # the factor once, as Stan's transformed data


def write_draws(out, draws):
    """draws: name -> array [chains, draws, ...]; one column per scalar, Stan's names (1-based)."""
    cols, names = [], []
    for k, v in draws.items():
        v = np.asarray(v)
        flat = v.reshape(v.shape[0], v.shape[1], -1)
        for j in range(flat.shape[2]):
            names.append(k if v.ndim == 2 else f"{k}[{j + 1}]")
            cols.append(flat[:, :, j].reshape(-1))
    nc, nd = next(iter(draws.values())).shape[:2]
    chain = np.repeat(np.arange(1, nc + 1), nd)
    draw = np.tile(np.arange(1, nd + 1), nc)
    with open(out + ".draws.csv", "w") as f:
        f.write(",".join(["chain", "draw"] + [f'"{n}"' for n in names]) + "\n")
        for i in range(len(chain)):
            f.write(f"{chain[i]},{draw[i]}," + ",".join(repr(float(c[i])) for c in cols) + "\n")


def numpyro_side(model, data, out):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    def eight(y, sigma):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        with numpyro.plate("J", y.shape[0]):
            theta_raw = numpyro.sample("theta_raw", dist.Normal(0.0, 1.0))
            theta = numpyro.deterministic("theta", mu + tau * theta_raw)
            numpyro.sample("y", dist.Normal(theta, sigma), obs=y)

    def logreg(X, y):
        alpha = numpyro.sample("alpha", dist.Normal(0.0, 5.0))
        beta = numpyro.sample("beta", dist.Normal(jnp.zeros(X.shape[1]), 5.0).to_event(1))
        with numpyro.plate("data", X.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)

    def mvn100(L):
        numpyro.sample("x", dist.MultivariateNormal(jnp.zeros(L.shape[0]), scale_tril=L))

    fn = {"eight": eight, "logreg": logreg, "mvn100": mvn100}[model]
    args = tuple(jnp.asarray(v) for v in data.values())

    # compile log: every XLA compilation during the timed runs is counted
    compiles = []

    class Count(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if "Finished XLA compilation" in msg:
                compiles.append(msg[:120])

    counter = Count()
    logging.getLogger("jax").addHandler(counter)
    logging.getLogger("jax").setLevel(logging.WARNING)

    # NumPyro's NUTS kernel (numpyro.infer.hmc.hmc: the sample_kernel that MCMC runs, with
    # the windowed adaptation inside it while i < num_warmup) in one jitted lax.scan of 1000
    # iterations, data as arguments: compiled once, then the same executable runs every
    # chain's warmup block and sampling block.  (MCMC.run itself retraces and recompiles
    # its loop on every run and every chain in numpyro 0.22, even with jit_model_args=True
    # and arrays of identical shapes: 3-10 s of XLA compilation per chain on this machine.)
    inits = [initialize_model(jax.random.PRNGKey(100 + c), fn, model_args=args, dynamic_args=True)
             for c in range(CHAINS)]
    init_kernel, sample_kernel = hmc(potential_fn_gen=inits[0].potential_fn, algo="NUTS")

    @jax.jit
    def block(state, a):
        def body(st, _):
            st = sample_kernel(st, model_args=a)
            return st, (st.z, st.num_steps, st.diverging)
        return jax.lax.scan(body, state, None, length=W)

    def chains():
        tw = ts = 0.0
        zs, steps, div, ninit = [], 0, 0, 0
        for c in range(CHAINS):
            t0 = time.process_time()
            st = init_kernel(inits[c].param_info, num_warmup=W, target_accept_prob=0.8,
                             max_tree_depth=10, dense_mass=False, model_args=args,
                             rng_key=jax.random.PRNGKey(c))
            st, _ = block(st, args)                      # warmup: adaptation inside
            jax.block_until_ready(st)
            t1 = time.process_time()
            st, (z, n, dv) = block(st, args)             # sampling
            jax.block_until_ready(z)
            t2 = time.process_time()
            tw += t1 - t0
            ts += t2 - t1
            zs.append(z)
            steps += int(np.sum(n))
            div += int(np.sum(dv))
        return tw, ts, zs, steps, div

    with jax.log_compiles(True):
        cw, cs, _, _, _ = chains()  # compiles
        n_compile_first = len(compiles)
        del compiles[:]
        runs = []
        for r in range(int(os.environ.get("REPS", "3"))):
            w, s, zs, steps, div = chains()
            runs.append((s, w, steps))
        n_compile_timed = len(compiles)
        timed_msgs = list(compiles)
    post = jax.jit(jax.vmap(inits[0].postprocess_fn(*args)))
    samples = {}
    for z in zs:
        for k, v in post(z).items():
            samples.setdefault(k, []).append(np.asarray(v))
    samples = {k: np.stack(v) for k, v in samples.items()}
    write_draws(out, samples)
    runs.sort()
    s, w, steps = runs[len(runs) // 2]

    # time per gradient: 2000 evaluations of the potential's value and gradient in one jitted loop
    init = initialize_model(jax.random.PRNGKey(0), fn, model_args=args)
    pot = init.potential_fn
    z0 = init.param_info.z
    vg = jax.value_and_grad(pot)
    K = 2000

    @jax.jit
    def loop(z):
        def body(i, c):
            z, acc = c
            v, g = vg(z)
            z = jax.tree_util.tree_map(lambda a, b: a + 1e-9 * b, z, g)
            return z, acc + v
        return jax.lax.fori_loop(0, K, body, (z, 0.0))

    jax.block_until_ready(loop(z0))
    gt = []
    for _ in range(5):
        t0 = time.process_time()
        jax.block_until_ready(loop(z0))
        gt.append((time.process_time() - t0) / K)

    # time to first draw: a fresh MCMC object, 1 chain, no warmup, 1 draw (compile included)
    m1 = MCMC(NUTS(fn), num_warmup=0, num_samples=1, num_chains=1, progress_bar=False)
    t0 = time.process_time()
    m1.run(jax.random.PRNGKey(2), *args)
    jax.block_until_ready(m1.get_samples())
    first = time.process_time() - t0
    res = {"framework": f"numpyro {numpyro.__version__}, jax {jax.__version__}",
           "compile_run_warmup_cpu": cw, "compile_run_sampling_cpu": cs,
           "warm_cpu": w, "samp_cpu": s, "lf_samp": steps,
           "all_samp_cpu": [r[0] for r in runs], "all_warm_cpu": [r[1] for r in runs],
           "compiles_first_run": n_compile_first, "compiles_timed_runs": n_compile_timed,
           "compiles_timed_msgs": timed_msgs, "divergences": div,
           "grad_s": float(np.median(gt)), "first_cpu": first}
    json.dump(res, open(out + ".json", "w"), indent=1)
    print(json.dumps(res))


def pyro_side(model, data, out):
    import torch
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    import pyro
    import pyro.distributions as dist
    from pyro.infer import MCMC, NUTS
    from pyro.infer.mcmc.util import initialize_model
    t = {k: torch.tensor(v) for k, v in data.items()}

    def eight(y, sigma):
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(5.0))
        with pyro.plate("J", y.shape[0]):
            theta_raw = pyro.sample("theta_raw", dist.Normal(0.0, 1.0))
            pyro.sample("y", dist.Normal(mu + tau * theta_raw, sigma), obs=y)

    def logreg(X, y):
        alpha = pyro.sample("alpha", dist.Normal(0.0, 5.0))
        beta = pyro.sample("beta", dist.Normal(torch.zeros(X.shape[1]), 5.0).to_event(1))
        with pyro.plate("data", X.shape[0]):
            pyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)

    def mvn100(L):
        pyro.sample("x", dist.MultivariateNormal(torch.zeros(L.shape[0]), scale_tril=L))

    fn = {"eight": eight, "logreg": logreg, "mvn100": mvn100}[model]
    args = tuple(t.values())
    init_params, pot, _, _ = initialize_model(fn, model_args=args)
    K = 2000
    z = {k: v.detach().clone().requires_grad_(True) for k, v in init_params.items()}
    gt = []
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(K):
            for v in z.values():
                v.grad = None
            u = pot(z)
            u.backward()
        gt.append((time.process_time() - t0) / K)
    pyro.set_rng_seed(1)
    n_warm, n_samp = 100, 100
    calls = [0]  # each leapfrog step evaluates the potential, i.e. runs the model, once

    def counted(*a):
        calls[0] += 1
        return fn(*a)
    mcmc = MCMC(NUTS(counted, target_accept_prob=0.8, max_tree_depth=10), warmup_steps=n_warm,
                num_samples=n_samp, num_chains=1, disable_progbar=True)
    t0 = time.process_time()
    mcmc.run(*args)
    total = time.process_time() - t0
    # the short run's draws (1 chain x n_samp), for the correctness checks of compare.py only
    write_draws(out, {k: np.asarray(v.detach())[None] for k, v in mcmc.get_samples().items()
                      if k in ("mu", "tau", "theta_raw", "alpha", "beta", "x")})
    res = {"framework": f"pyro {pyro.__version__}, torch {torch.__version__}",
           "grad_s": float(np.median(gt)), "short_run_cpu": total,
           "short_run": f"1 chain x ({n_warm} + {n_samp})", "short_run_model_calls": calls[0],
           "lf_s": total / max(calls[0], 1)}
    json.dump(res, open(out + ".json", "w"), indent=1)
    print(json.dumps(res))


if __name__ == "__main__":
    fw, model, path, out = sys.argv[1:5]
    data = load(model, path)
    (numpyro_side if fw == "numpyro" else pyro_side)(model, data, out)
