#!/usr/bin/env python3
"""vae_torch.py - the VAE of bench/vae/vae.ppl in PyTorch (CPU), for
bench/bench_vae.sh: random binary images (p = 0.3), encoder 784-400-40
(relu), decoder 20-400-784 (relu, Bernoulli logits), minibatches of 128,
the single-sample Monte Carlo ELBO (log p(x|z) + log p(z) - log q(z), as
Trace_ELBO), Adam(lr=1e-3).  One thread unless told.  Prints images per
second over the timed steps (after warm-up steps), by CPU time and by wall
time.

usage: vae_torch.py [steps] [float32|float64] [threads]
"""
import math
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 300
dtype = torch.float64 if len(sys.argv) > 2 and sys.argv[2] == "float64" else torch.float32
torch.manual_seed(1)
N, B, Z, H, D = 2560, 128, 20, 400, 784
X = (torch.rand(N, D) < 0.3).to(dtype)
enc = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), torch.nn.Linear(H, 2 * Z)).to(dtype)
dec = torch.nn.Sequential(torch.nn.Linear(Z, H), torch.nn.ReLU(), torch.nn.Linear(H, D)).to(dtype)
opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
LOG2PI = math.log(2 * math.pi)


def step():
    idx = torch.randperm(N)[:B]
    x = X[idx]
    h = enc(x)
    loc, log_sd = h[:, :Z], h[:, Z:]
    eps = torch.randn_like(loc)
    z = loc + torch.exp(log_sd) * eps
    logits = dec(z)
    ll = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    lp = -0.5 * (z * z + LOG2PI).sum()
    lq = (-0.5 * (eps * eps + LOG2PI) - log_sd).sum()
    loss = -(ll + lp - lq) * (N / B)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


for _ in range(20):
    step()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(steps):
    step()
dt, dc = time.perf_counter() - t0, time.process_time() - c0
# CPU time is the fair measure on a shared machine
print("torch %s: %.0f images/s by CPU time, %.0f by wall time (%.2f ms CPU/step over %d steps, %d threads)"
      % (str(dtype).replace("torch.", ""), steps * B / dc, steps * B / dt, dc / steps * 1e3, steps,
         torch.get_num_threads()))
