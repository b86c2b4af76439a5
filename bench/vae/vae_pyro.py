#!/usr/bin/env python3
"""vae_pyro.py - the VAE of bench/vae/vae.ppl written as Pyro's VAE example
(pyro/examples/vae/vae.py: a model with pyro.module("decoder", ...), a plate
over the minibatch, z ~ Normal(0, I).to_event(1), x ~ Bernoulli.to_event(1);
a guide with pyro.module("encoder", ...) and z ~ Normal(loc, scale); SVI
with Trace_ELBO and pyro.optim.Adam), on the same data and network as
bench/bench_vae.sh's other runs: 2560 random binary images (p = 0.3),
encoder 784-400-40 (relu; loc and log-scale), decoder 20-400-784 (relu,
Bernoulli logits), minibatches of 128 drawn at random, the minibatch
log-likelihood scaled by N / B (the subsampled plate), Adam(lr=1e-3),
float32.  (Pyro's example itself uses softplus hidden units and MNIST, which
cannot be downloaded here.)  Prints images per second by CPU and wall time.

usage: vae_pyro.py [steps] [threads]
"""
import sys
import time

import torch
import pyro
import pyro.distributions as dist
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
torch.manual_seed(1)
pyro.set_rng_seed(1)
N, B, Z, H, D = 2560, 128, 20, 400, 784
X = (torch.rand(N, D) < 0.3).float()


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, 2 * Z))

    def forward(self, x):
        h = self.net(x)
        return h[:, :Z], torch.exp(h[:, Z:])


class VAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = torch.nn.Sequential(torch.nn.Linear(Z, H), torch.nn.ReLU(), torch.nn.Linear(H, D))

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", N, subsample_size=B, subsample=x.idx):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(B, Z), x.new_ones(B, Z)).to_event(1))
            pyro.sample("obs", dist.Bernoulli(logits=self.decoder(z), validate_args=False).to_event(1),
                        obs=x.batch)

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", N, subsample_size=B, subsample=x.idx):
            loc, scale = self.encoder(x.batch)
            pyro.sample("latent", dist.Normal(loc, scale).to_event(1))


class Batch:
    """The minibatch and its indices (one object, so model and guide agree)."""

    def __init__(self):
        self.idx = torch.randperm(N)[:B]
        self.batch = X[self.idx]

    def new_zeros(self, *s):
        return self.batch.new_zeros(*s)

    def new_ones(self, *s):
        return self.batch.new_ones(*s)


vae = VAE()
svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), loss=Trace_ELBO())
for _ in range(20):
    svi.step(Batch())
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(steps):
    svi.step(Batch())
dt, dc = time.perf_counter() - t0, time.process_time() - c0
print("pyro float32: %.0f images/s by CPU time, %.0f by wall time (%.2f ms CPU/step over %d steps, %d threads)"
      % (steps * B / dc, steps * B / dt, dc / steps * 1e3, steps, torch.get_num_threads()))
