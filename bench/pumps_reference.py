"""Exact posterior of examples/pumps.ppl by quadrature (the check of its
`# expect:` lines).  theta_i ~ Gamma(alpha, beta) is conjugate to
x_i ~ Poisson(theta_i t_i), so theta integrates out:
  p(x_i | alpha, beta) = Gamma(alpha + x_i) / (Gamma(alpha) x_i!) beta^alpha t_i^x_i / (beta + t_i)^(alpha + x_i)
and theta_i | alpha, beta, x ~ Gamma(alpha + x_i, beta + t_i).  What is left,
p(alpha, beta | x), is integrated on a grid over (log alpha, log beta).
usage: /opt/bench-venv/bin/python bench/pumps_reference.py"""
import json
import numpy as np
from scipy.special import gammaln

d = json.load(open("examples/pumps.json"))
t = np.array(d["t"], float)
x = np.array(d["x"], float)
la = np.linspace(-6.0, 3.0, 1201)[:, None, None]   # log alpha
lb = np.linspace(-8.0, 4.0, 1201)[None, :, None]   # log beta
a, b = np.exp(la), np.exp(lb)
ll = (gammaln(a + x) - gammaln(a) - gammaln(x + 1) + a * np.log(b) + x * np.log(t)
      - (a + x) * np.log(b + t)).sum(-1)
a, b = a[..., 0], b[..., 0]
# priors alpha ~ Exponential(1), beta ~ Gamma(0.1, 1), times the Jacobian alpha * beta
lp = ll - a + (0.1 - 1) * np.log(b) - b + np.log(a) + np.log(b)
w = np.exp(lp - lp.max())
w /= w.sum()

def report(name, m1, m2):
    print(f"{name:9s} mean {m1:.4f} sd {np.sqrt(m2 - m1 * m1):.4f}")

report("alpha", (w * a).sum(), (w * a * a).sum())
report("beta", (w * b).sum(), (w * b * b).sum())
for i in range(len(x)):
    shape, rate = a + x[i], b + t[i]
    m1 = (w * shape / rate).sum()
    m2 = (w * shape * (shape + 1) / rate ** 2).sum()
    report(f"theta[{i}]", m1, m2)
