#!/usr/bin/env python3
"""bench/mcmc_numpyro.py - eight schools, non-centered (as examples/eight_schools.ppl
and bench/eight_schools.stan) under NumPyro's NUTS on the CPU, float64, one thread:
4 chains in turn x (1000 warmup + 1000 draws), diagonal metric, target accept 0.8.
The first warmup + sampling of an MCMC object compiles (reported apart); the same
object run again reuses the compiled kernels, and that run's CPU time
(time.process_time, all threads) is split into warmup and sampling.  Prints the
sampling leapfrogs, time per leapfrog, min bulk ESS (ArviZ, rank-normalized) and min
bulk ESS / s of sampling CPU.  Medians over REPS (default 3) timed runs.
usage: /opt/bench-venv/bin/python bench/mcmc_numpyro.py [examples/eight_schools.json]
"""
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import arviz as az  # noqa: E402
import numpyro  # noqa: E402
import numpyro.distributions as dist  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

data = json.load(open(sys.argv[1] if len(sys.argv) > 1 else "examples/eight_schools.json"))
y = jnp.array(data["y"], dtype=jnp.float64)
sigma = jnp.array(data["sigma"], dtype=jnp.float64)
J = data["J"]


def model(y, sigma):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("J", J):
        theta_raw = numpyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", mu + tau * theta_raw)
        numpyro.sample("y", dist.Normal(theta, sigma), obs=y)


def once(mcmc, key):
    t0 = time.process_time()
    mcmc.warmup(key, y, sigma, extra_fields=("num_steps",), collect_warmup=False)
    jax.block_until_ready(mcmc.post_warmup_state)
    t1 = time.process_time()
    mcmc.run(mcmc.post_warmup_state.rng_key, y, sigma, extra_fields=("num_steps",))
    jax.block_until_ready(mcmc.get_samples())
    t2 = time.process_time()
    return t1 - t0, t2 - t1


kernel = NUTS(model, target_accept_prob=0.8, max_tree_depth=10)
mcmc = MCMC(kernel, num_warmup=1000, num_samples=1000, num_chains=4, chain_method="sequential",
            progress_bar=False)
key = jax.random.PRNGKey(1)
cw, cs = once(mcmc, key)  # compiles
runs = []
for r in range(int(os.environ.get("REPS", "3"))):
    mcmc.post_warmup_state = None
    w, s = once(mcmc, key)
    steps = int(np.sum(mcmc.get_extra_fields(group_by_chain=True)["num_steps"]))
    samples = mcmc.get_samples(group_by_chain=True)
    ess = az.ess(az.from_dict(posterior={k: np.asarray(v) for k, v in samples.items()}), method="bulk")
    min_ess = min(float(np.min(ess[k].values)) for k in ess.data_vars)
    runs.append((s, w, steps, min_ess))
runs.sort()
s, w, steps, min_ess = runs[len(runs) // 2]
print(f"numpyro {numpyro.__version__}, jax {jax.__version__}: first (compiling) run warmup {cw:.2f} s + "
      f"sampling {cs:.2f} s CPU")
print(f"numpyro: warmup {w:.3f} s, sampling {s:.3f} s CPU (median of {len(runs)}; all sampling "
      f"{[round(r[0], 3) for r in runs]})")
print(f"numpyro: sampling leapfrogs {steps}, per leapfrog {1e6 * s / steps:.2f} us, min bulk ESS "
      f"{min_ess:.0f}, min bulk ESS/s {min_ess / s:.0f}; whole warmup + sampling ESS/s {min_ess / (w + s):.0f}")
