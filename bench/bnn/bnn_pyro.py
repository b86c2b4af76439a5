#!/usr/bin/env python3
"""Pyro side of bench/bench_bnn.sh: the BNN of bench/bnn/bnn.ppl as a
PyroModule whose nn.Linear weights and biases are PyroSample sites with
Normal(0, 1) priors, sigma ~ HalfNormal(1), AutoNormal guide, Trace_ELBO
(one particle), Adam(lr=0.01), the same deterministic data.  One thread.
usage: bnn_pyro.py SIZES ACT N STEPS DTYPE   (SIZES like 1,50,1)
Prints the CPU time per step (process_time over STEPS steps after 50
warm-up steps) and the ELBO (mean of the last 10% of steps)."""
import sys, time
import torch
import torch.nn as nn
import pyro
import pyro.distributions as dist
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample

torch.set_num_threads(1)

ACTS = {"tanh": torch.tanh, "relu": torch.relu}


class BNN(PyroModule):
    def __init__(self, sizes, act):
        super().__init__()
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            lin = PyroModule[nn.Linear](a, b)
            lin.weight = PyroSample(dist.Normal(0.0, 1.0).expand([b, a]).to_event(2))
            lin.bias = PyroSample(dist.Normal(0.0, 1.0).expand([b]).to_event(1))
            layers.append(lin)
        self.layers = PyroModule[nn.ModuleList](layers)
        self.act = ACTS[act]

    def forward(self, x, y=None):
        h = x
        for k, lin in enumerate(self.layers):
            h = lin(h)
            if k < len(self.layers) - 1:
                h = self.act(h)
        f = h.squeeze(-1)
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(f, sigma), obs=y)
        return f


def data(sizes, n):
    d = sizes[0]
    i = torch.arange(n, dtype=torch.get_default_dtype())
    if d == 1:
        x = (-3.0 + 6.0 * i / (n - 1)).reshape(n, 1)
    else:
        j = torch.arange(d, dtype=torch.get_default_dtype())
        x = torch.sin(0.7 * i.reshape(n, 1) + 1.9 * j.reshape(1, d) + 0.3)
    y = torch.sin(1.3 * x.sum(1)) + 0.25 * torch.sin(97.3 * i)
    return x, y


def main():
    sizes = [int(s) for s in sys.argv[1].split(",")]
    act, n, steps, dtype = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_default_dtype(torch.float64 if dtype == "float64" else torch.float32)
    pyro.set_rng_seed(1)
    pyro.clear_param_store()
    x, y = data(sizes, n)
    model = BNN(sizes, act)
    svi = SVI(model, AutoNormal(model), pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    for _ in range(50):
        svi.step(x, y)
    losses = []
    c = time.process_time()
    for _ in range(steps):
        losses.append(svi.step(x, y))
    cpu = (time.process_time() - c) / steps
    tail = losses[-max(1, steps // 10):]
    print("pyro %s %.1f us/step CPU  elbo %.2f" % (dtype, cpu * 1e6, -sum(tail) / len(tail)))


if __name__ == "__main__":
    main()
