"""Exact posterior of examples/coal_mining.ppl by quadrature (the check of
its `# expect:` lines): early, late ~ Exponential(1), a change point s
uniform over the T years, y[t] ~ Poisson(early if t < s else late).
p(early, late | y) is integrated on a fine grid after summing s out exactly.
usage: /opt/bench-venv/bin/python bench/changepoint_reference.py"""
import json
import numpy as np
from scipy.special import gammaln, logsumexp

d = json.load(open("examples/coal_mining.json"))
y = np.array(d["y"], float)
T = len(y)
e = np.linspace(1.5, 5.0, 401)[:, None]     # early rate grid
l = np.linspace(0.3, 2.0, 401)[None, :]     # late rate grid
# prefix sums: A[s] = sum_{t<s} y_t, sum over all years = tot
A = np.concatenate([[0.0], np.cumsum(y)])[:T]
n = np.arange(T)
tot = y.sum()
logfact = gammaln(y + 1).sum()
# log p(y | e, l, s) for every s: shape (ne, nl, T)
lpy = (A * np.log(e)[..., None] - n * e[..., None] + (tot - A) * np.log(l)[..., None]
       - (T - n) * l[..., None] - logfact)
lp_s = lpy - np.log(T)
lp = logsumexp(lp_s, axis=-1) - e - l        # Exponential(1) priors
w = np.exp(lp - lp.max())
w /= w.sum()
ps = np.exp(lp_s - logsumexp(lp_s, axis=-1, keepdims=True))
year = d["first_year"] + (ps * n).sum(-1)    # E[change year | e, l, y]
for name, v in [("early", np.broadcast_to(e, w.shape)), ("late", np.broadcast_to(l, w.shape)),
                ("year", year)]:
    m = (w * v).sum()
    sd = np.sqrt((w * (v - m) ** 2).sum())
    print(f"{name:6s} mean {m:.4f} sd {sd:.4f}")
p = (w * ps[..., 35:45].sum(-1)).sum()
print(f"p(change in 1886-1895) {p:.4f}")
