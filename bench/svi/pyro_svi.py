#!/usr/bin/env python3
"""Pyro side of bench/bench_svi.sh: the same models, guides, optimizer and
step counts as bench/svi/*.ppl; prints the median time per SVI step over
repeats (after a warm-up) and the final ELBO."""
import sys, time, statistics
import torch
import pyro
import pyro.distributions as dist
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.optim import Adam

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

def sensor_model(sensor):
    temp = pyro.sample("temp", dist.Normal(15.0, 2.0))
    pyro.sample("sensor", dist.Normal(temp, 1.0), obs=sensor)

def sensor_guide(sensor):
    loc = pyro.param("loc", torch.tensor(15.0))
    scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    pyro.sample("temp", dist.Normal(loc, scale))

J = 8
Y = torch.tensor([28., 8, -3, 7, -1, 1, 18, 12])
SIGMA = torch.tensor([15., 10, 16, 11, 9, 11, 10, 18])

def schools(y, sigma):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("school", J):
        theta_raw = pyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        pyro.sample("y", dist.Normal(mu + tau * theta_raw, sigma), obs=y)

def run(name, steps):
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    if name == "sensor":
        svi = SVI(sensor_model, sensor_guide, Adam({"lr": 0.01}), Trace_ELBO())
        args = (torch.tensor(18.0),)
    else:
        svi = SVI(schools, AutoNormal(schools), Adam({"lr": 0.01}), Trace_ELBO())
        args = (Y, SIGMA)
    for _ in range(50):
        svi.step(*args)
    t = time.perf_counter()
    loss = 0
    for _ in range(steps):
        loss = svi.step(*args)
    return (time.perf_counter() - t) / steps, -loss

if __name__ == "__main__":
    name, steps = sys.argv[1], int(sys.argv[2])
    times = []
    for _ in range(3):
        per, elbo = run(name, steps)
        times.append(per)
    print("%s pyro median %.1f us/step  (final ELBO %.3f)" % (name, statistics.median(times) * 1e6, elbo))
