#!/usr/bin/env python3
"""Pyro side of bench/bench_svi.sh: the same models, guides, optimizer and
step counts as bench/svi/*.ppl; prints the median time per SVI step over
repeats (after a warm-up) and the final ELBO."""
import sys, time, statistics
import torch
import pyro
import pyro.distributions as dist
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal, AutoMultivariateNormal
import json, os
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

_REG = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "regression.json")))
RX = torch.tensor(_REG["X"])
RY = torch.tensor(_REG["y"])

def reg(X, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = pyro.sample("beta", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", 170):
        pyro.sample("y", dist.Normal(alpha + X @ beta, sigma), obs=y)

def run(name, steps):
    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    if name == "sensor":
        svi = SVI(sensor_model, sensor_guide, Adam({"lr": 0.01}), Trace_ELBO())
        args = (torch.tensor(18.0),)
    elif name == "eight_schools":
        svi = SVI(schools, AutoNormal(schools), Adam({"lr": 0.01}), Trace_ELBO())
        args = (Y, SIGMA)
    else:
        guide = AutoNormal(reg) if name == "regression_normal" else AutoMultivariateNormal(reg)
        svi = SVI(reg, guide, Adam({"lr": 0.01}), Trace_ELBO())
        args = (RX, RY)
    for _ in range(50):
        svi.step(*args)
    t, c = time.perf_counter(), time.process_time()
    losses = []
    for _ in range(steps):
        losses.append(svi.step(*args))
    tail = losses[-max(1, steps // 10):]
    return (time.perf_counter() - t) / steps, -sum(tail) / len(tail), (time.process_time() - c) / steps

if __name__ == "__main__":
    name, steps = sys.argv[1], int(sys.argv[2])
    times = []
    for _ in range(3):
        per, elbo, cpu = run(name, steps)
        times.append((per, cpu))
    print("%s pyro median %.1f us/step wall, %.1f us/step CPU  (final ELBO %.3f, mean of the last 10%% of steps)"
          % (name, statistics.median(t[0] for t in times) * 1e6, statistics.median(t[1] for t in times) * 1e6, elbo))
