#!/usr/bin/env python3
"""NumPyro side of bench/bench_svi.sh: the same models, guides, optimizer as
bench/svi/*.ppl, float64, one CPU thread.  The SVI update is jitted; the
first call (tracing + XLA compilation) is timed and reported on its own,
then the median time per jitted step (called from Python, as a user's loop
does) over repeats, and the final ELBO (mean of the last 10% of steps)."""
import os, sys, time, statistics, json
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal, AutoMultivariateNormal
from numpyro.optim import Adam

def sensor_model(sensor):
    temp = numpyro.sample("temp", dist.Normal(15.0, 2.0))
    numpyro.sample("sensor", dist.Normal(temp, 1.0), obs=sensor)

def sensor_guide(sensor):
    loc = numpyro.param("loc", 15.0)
    scale = numpyro.param("scale", 1.0, constraint=dist.constraints.positive)
    numpyro.sample("temp", dist.Normal(loc, scale))

J = 8
Y = jnp.array([28., 8, -3, 7, -1, 1, 18, 12])
SIGMA = jnp.array([15., 10, 16, 11, 9, 11, 10, 18])

def schools(y, sigma):
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", J):
        theta_raw = numpyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu + tau * theta_raw, sigma), obs=y)

_REG = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "regression.json")))
RX = jnp.array(_REG["X"])
RY = jnp.array(_REG["y"])

def reg(X, y):
    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.Normal(jnp.zeros(3), 1.0).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    with numpyro.plate("data", 170):
        numpyro.sample("y", dist.Normal(alpha + X @ beta, sigma), obs=y)

def make(name):
    if name == "sensor":
        return SVI(sensor_model, sensor_guide, Adam(0.01), Trace_ELBO()), (jnp.array(18.0),)
    if name == "eight_schools":
        return SVI(schools, AutoNormal(schools), Adam(0.01), Trace_ELBO()), (Y, SIGMA)
    guide = AutoNormal(reg) if name == "regression_normal" else AutoMultivariateNormal(reg)
    return SVI(reg, guide, Adam(0.01), Trace_ELBO()), (RX, RY)

SCAN_STEPS = 20000

def run(name, steps):
    svi, args = make(name)
    state = svi.init(jax.random.PRNGKey(1), *args)
    update = jax.jit(svi.update)
    t = time.perf_counter()
    state, loss = update(state, *args)
    jax.block_until_ready(loss)
    compile_s = time.perf_counter() - t
    for _ in range(50):
        state, loss = update(state, *args)
    jax.block_until_ready(loss)
    losses = []
    t, c = time.perf_counter(), time.process_time()
    for _ in range(steps):
        state, loss = update(state, *args)
        losses.append(loss)
    jax.block_until_ready(loss)
    per = (time.perf_counter() - t) / steps
    cpu = (time.process_time() - c) / steps
    tail = [float(l) for l in losses[-max(1, steps // 10):]]
    # the whole loop compiled (lax.scan, as svi.run does): no Python dispatch;
    # SCAN_STEPS steps from a fresh start, as many as the ppl runs take, so
    # its final ELBO is the one to compare
    def body(st, _):
        return svi.update(st, *args)
    state0 = svi.init(jax.random.PRNGKey(1), *args)
    t = time.perf_counter()
    loop = jax.jit(lambda st: jax.lax.scan(body, st, None, length=SCAN_STEPS)).lower(state0).compile()
    loop_compile_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    _, ls = loop(state0)
    jax.block_until_ready(ls)
    per_scan = (time.perf_counter() - t) / SCAN_STEPS
    cpu_scan = (time.process_time() - c) / SCAN_STEPS
    scan_elbo = -float(jnp.mean(ls[-SCAN_STEPS // 10:]))
    return compile_s, per, -sum(tail) / len(tail), loop_compile_s, per_scan, scan_elbo, cpu, cpu_scan

if __name__ == "__main__":
    name, steps = sys.argv[1], int(sys.argv[2])
    res = [run(name, steps) for _ in range(3)]
    med = lambda k: statistics.median(r[k] for r in res) * 1e6
    print("%s numpyro jitted step: median %.1f us/step wall, %.1f CPU (compile %.2f s; ELBO after %d steps %.3f); "
          "compiled lax.scan loop of %d steps: %.1f us/step wall, %.1f CPU (compile %.2f s; final ELBO %.3f)"
          % (name, med(1), med(6), res[0][0], steps + 51, res[-1][2], SCAN_STEPS, med(4), med(7), res[0][3], res[-1][5]))
