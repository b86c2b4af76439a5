#!/usr/bin/env python3
"""vae_epochs_pyro.py - bench/epochs/vae_epochs.ppl in Pyro: the same VAE
(encoder 64-256-16, decoder 8-256-64, relu, Bernoulli logits), 400 training
images in shuffled minibatches of 64 per epoch (torch.randperm, the indices
passed to pyro.plate(subsample=...), which scales the last batch of 16 by
400/16), TraceMeanField_ELBO, Adam(lr=0.003), and after each epoch
svi.evaluate_loss on the 297 validation images with 2 particles.  float64,
one thread.  Prints CPU seconds per epoch over the timed epochs (after one
warm-up epoch).

usage: vae_epochs_pyro.py [epochs]
"""
import sys
import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import Adam

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
pyro.set_rng_seed(1)
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
X = torch.tensor(np.load("examples/data/digits_train.npy") > 0.5, dtype=torch.float64)
Xfit, Xval = X[0:400], X[1200:1497]
Z, B = 8, 64
enc = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2 * Z))
dec = torch.nn.Sequential(torch.nn.Linear(Z, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))


def model(X, idx):
    pyro.module("dec", dec)
    with pyro.plate("data", len(X), subsample=idx):
        z = pyro.sample("z", dist.Normal(torch.zeros(len(idx), Z), 1.0).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=dec(z)).to_event(1), obs=X[idx])


def guide(X, idx):
    pyro.module("enc", enc)
    with pyro.plate("data", len(X), subsample=idx):
        h = enc(X[idx])
        pyro.sample("z", dist.Normal(h[:, :Z], torch.exp(h[:, Z:])).to_event(1))


svi = SVI(model, guide, Adam({"lr": 0.003}), TraceMeanField_ELBO())
val = SVI(model, guide, Adam({"lr": 0.003}), TraceMeanField_ELBO(num_particles=2))
all_val = torch.arange(len(Xval))


def epoch():
    perm = torch.randperm(len(Xfit))
    for k in range(0, len(Xfit), B):
        svi.step(Xfit, perm[k:k + B])
    with torch.no_grad():
        return val.evaluate_loss(Xval, all_val)


epoch()
c0 = time.process_time()
for _ in range(epochs):
    v = epoch()
c1 = time.process_time()
print("pyro epochs %d val elbo/image %.3f cpu %.4f s/epoch" % (epochs, -v / len(Xval), (c1 - c0) / epochs))
