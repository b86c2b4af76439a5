"""Pyro's side of bench/enum_changepoint.sh: the coal-mining change point with
the discrete switch point s enumerated in parallel (infer={"enumerate":
"parallel"}, TraceEnum's contraction inside Pyro's NUTS potential), 1 chain,
the same warmup / samples as ppl; prints CPU seconds of the run, the time per
potential gradient (timed apart on the potential_fn Pyro builds), min bulk ESS
of early/late, their means: one line "cpu grad_us min_ess early late".  NumPyro needs funsor for enumeration in NUTS, which
this environment lacks.
usage: /opt/bench-venv/bin/python bench/enum_changepoint_pyro.py WARMUP SAMPLES"""
import json, sys, time
import torch
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
import pyro
import pyro.distributions as dist
from pyro.infer import MCMC, NUTS
from pyro.infer.mcmc.util import initialize_model
from pyro.ops.stats import effective_sample_size

d = json.load(open("examples/coal_mining.json"))
y = torch.tensor(d["y"], dtype=torch.float64)
T = len(y)


def model(y):
    early = pyro.sample("early", dist.Exponential(1.0))
    late = pyro.sample("late", dist.Exponential(1.0))
    s = pyro.sample("s", dist.Categorical(torch.ones(T) / T), infer={"enumerate": "parallel"})
    # s is [T, 1] when enumerated (left of the plate), a scalar otherwise
    rate = torch.where(torch.arange(T) < s, early, late)
    with pyro.plate("t", T):
        pyro.sample("y", dist.Poisson(rate), obs=y)


warmup, samples = int(sys.argv[1]), int(sys.argv[2])
pyro.set_rng_seed(1)
# time per gradient of the enumerated potential
init, potential_fn, _, _ = initialize_model(model, model_args=(y,), max_plate_nesting=1)
z = {k: v.clone().requires_grad_(True) for k, v in init.items()}
t0 = time.process_time()
n = 200
for _ in range(n):
    u = potential_fn(z)
    g = torch.autograd.grad(u, list(z.values()))
grad_s = (time.process_time() - t0) / n
t0 = time.process_time()
mcmc = MCMC(NUTS(model, max_plate_nesting=1, jit_compile=False), num_samples=samples, warmup_steps=warmup,
            num_chains=1, disable_progbar=True)
mcmc.run(y)
cpu = time.process_time() - t0
ss = mcmc.get_samples()
ess = min(float(effective_sample_size(ss[k].unsqueeze(0))) for k in ("early", "late"))
# "cpu grad_us min_ess early late"
print(f"{cpu:.3f} {grad_s * 1e6:.1f} {ess:.1f} {ss['early'].mean():.4f} {ss['late'].mean():.4f}")
