"""Pyro's side of bench/mixture_enum.sh: examples/mixture_enum.ppl's
two-component Gaussian mixture with every point's assignment z enumerated in
parallel (infer={"enumerate": "parallel"}: TraceEnum's contraction inside
Pyro's NUTS potential), 1 chain, the same warmup / samples as ppl; prints CPU
seconds of the run, the time per potential gradient (timed apart on the
potential_fn Pyro builds), min bulk ESS of w, mu, sigma, and the means of w,
mu[0], mu[1], sigma: one line "cpu grad_us min_ess w mu0 mu1 sigma".
usage: /opt/bench-venv/bin/python bench/mixture_enum_pyro.py WARMUP SAMPLES"""
import json, sys, time
import torch
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
import pyro
import pyro.distributions as dist
from pyro.distributions import constraints
from pyro.infer import MCMC, NUTS
from pyro.infer.mcmc.util import initialize_model
from pyro.infer.autoguide.initialization import init_to_uniform, init_to_value
from pyro.ops.stats import effective_sample_size

y = torch.tensor(json.load(open("examples/mixture.json"))["y"], dtype=torch.float64)
N = len(y)


def model(y):
    w = pyro.sample("w", dist.Beta(2.0, 2.0))
    # ppl's `sample mu: ordered ~ Normal(zeros(2), 5.0).to_event(1)`
    mu = pyro.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    pyro.factor("mu_prior", dist.Normal(0.0, 5.0).log_prob(mu).sum())
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("n", N):
        z = pyro.sample("z", dist.Bernoulli(w), infer={"enumerate": "parallel"})
        pyro.sample("y", dist.Normal(torch.where(z == 1, mu[1], mu[0]), sigma), obs=y)


warmup, samples = int(sys.argv[1]), int(sys.argv[2])
# ImproperUniform cannot be sampled: mu starts at (-1, 1), the rest uniform in (-2, 2) unconstrained
init = init_to_value(values={"mu": torch.tensor([-1.0, 1.0])}, fallback=init_to_uniform)
pyro.set_rng_seed(1)
init0, potential_fn, _, _ = initialize_model(model, model_args=(y,), max_plate_nesting=1, init_strategy=init)
zz = {k: v.clone().requires_grad_(True) for k, v in init0.items()}
t0 = time.process_time()
n = 300
for _ in range(n):
    u = potential_fn(zz)
    g = torch.autograd.grad(u, list(zz.values()))
grad_s = (time.process_time() - t0) / n
t0 = time.process_time()
mcmc = MCMC(NUTS(model, max_plate_nesting=1, jit_compile=False, init_strategy=init), num_samples=samples, warmup_steps=warmup,
            num_chains=1, disable_progbar=True)
mcmc.run(y)
cpu = time.process_time() - t0
ss = mcmc.get_samples()
cols = {"w": ss["w"], "mu0": ss["mu"][:, 0], "mu1": ss["mu"][:, 1], "sigma": ss["sigma"]}
ess = min(float(effective_sample_size(v.unsqueeze(0))) for v in cols.values())
print(f"{cpu:.3f} {grad_s * 1e6:.1f} {ess:.1f} " + " ".join(f"{float(v.mean()):.4f}" for v in cols.values()))
