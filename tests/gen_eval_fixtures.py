#!/usr/bin/env python3
"""Write tests/fixtures/eval_metrics.json: inputs and reference values for
the evaluation built-ins (nll, ece, brier, interval_coverage, sharpness,
crps, predictive_interval), checked by tests/unit/test_eval.c.

The references are written here from the definitions in docs/EVALUATION.md
with NumPy/SciPy, independently of the C code (for instance the ensemble
CRPS uses the O(S^2) pairwise form, the C code a sorted O(S log S) form,
and the closed-form Normal CRPS is cross-checked against numerical
integration of the squared cdf difference).
Run from the repository root: python3 tests/gen_eval_fixtures.py
"""
import json
import numpy as np
from scipy import stats, special, integrate

rng = np.random.default_rng(20261202)
out = {}
exp = {}

# ---- regression: Normal predictive, draws, intervals ----------------------
n, S = 40, 200
mu = rng.normal(0, 2, n)
sd = rng.uniform(0.3, 2.0, n)
y = mu + sd * rng.standard_t(4, n)          # heavier tails than predicted
draws = mu + sd * rng.normal(size=(S, n))
out.update(mu=mu.tolist(), sd=sd.tolist(), y=y.tolist(), draws=draws.tolist())

exp["nll"] = float(-np.mean(stats.norm.logpdf(y, mu, sd)))
# posterior-predictive mixture: draws of the mean, fixed sd
lp = stats.norm.logpdf(y[None, :], draws, sd[None, :])
exp["nll_mixture"] = float(-np.mean(special.logsumexp(lp, axis=0) - np.log(S)))


def crps_normal(y, m, s):
    z = (y - m) / s
    return s * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


# cross-check the closed form: CRPS = int (F(x) - 1{x >= y})^2 dx
for i in range(5):
    f = lambda x: (stats.norm.cdf(x, mu[i], sd[i]) - (x >= y[i])) ** 2
    num = integrate.quad(f, -np.inf, y[i])[0] + integrate.quad(f, y[i], np.inf)[0]
    assert abs(num - crps_normal(y[i], mu[i], sd[i])) < 1e-7, (num, crps_normal(y[i], mu[i], sd[i]))
exp["crps_normal"] = float(np.mean(crps_normal(y, mu, sd)))


def crps_ensemble(x, yv):
    # properscoring's crps_ensemble (fair=False): E|X - y| - 1/2 E|X - X'|
    a = np.mean(np.abs(x - yv))
    b = np.mean(np.abs(x[:, None] - x[None, :]))
    return a - 0.5 * b


exp["crps_draws"] = float(np.mean([crps_ensemble(draws[:, j], y[j]) for j in range(n)]))

lo90 = np.quantile(draws, 0.05, axis=0)
hi90 = np.quantile(draws, 0.95, axis=0)
exp["coverage_draws"] = float(np.mean((lo90 <= y) & (y <= hi90)))
exp["width_draws"] = float(np.mean(hi90 - lo90))
exp["sd_draws"] = float(np.mean(np.std(draws, axis=0)))
exp["pi_lower0"] = float(lo90[0])
exp["pi_upper7"] = float(hi90[7])
exp["pi_median3"] = float(np.quantile(draws[:, 3], 0.5))
lo80 = stats.norm.ppf(0.1, mu, sd)
hi80 = stats.norm.ppf(0.9, mu, sd)
exp["coverage_normal80"] = float(np.mean((lo80 <= y) & (y <= hi80)))
exp["width_normal80"] = float(np.mean(hi80 - lo80))
exp["sd_normal"] = float(np.mean(sd))
lower = mu - 1.0
upper = mu + 1.5
out.update(lower=lower.tolist(), upper=upper.tolist())
exp["coverage_bounds"] = float(np.mean((lower <= y) & (y <= upper)))
exp["width_bounds"] = 2.5

# ---- classification --------------------------------------------------------


def ece(probs, labels, bins):
    # top-label ECE; bin b holds b/bins < confidence <= (b+1)/bins
    conf = probs.max(axis=1)
    pred = probs.argmax(axis=1)
    edges = np.arange(1, bins) / bins
    b = np.sum(conf[:, None] > edges[None, :], axis=1)
    e = 0.0
    for k in range(bins):
        m = b == k
        if m.any():
            e += m.sum() / len(conf) * abs(np.mean(pred[m] == labels[m]) - np.mean(conf[m]))
    return e


N = 200
pb = special.expit(rng.normal(0, 2, N))
yb = (rng.uniform(size=N) < special.expit(1.5 * special.logit(pb))).astype(int)  # miscalibrated
out.update(pb=pb.tolist(), yb=yb.tolist())
p2 = np.stack([1 - pb, pb], axis=1)
exp["ece_bin"] = float(ece(p2, yb, 10))
exp["ece_bin15"] = float(ece(p2, yb, 15))
exp["brier_bin"] = float(np.mean((pb - yb) ** 2))

K = 4
logits = rng.normal(0, 1.5, (N, K))
pm = special.softmax(logits, axis=1)
ym = np.array([rng.choice(K, p=special.softmax(0.7 * l)) for l in logits])
out.update(pm=pm.tolist(), ym=ym.tolist())
exp["ece_mc"] = float(ece(pm, ym, 10))
exp["brier_mc"] = float(np.mean(np.sum((pm - np.eye(K)[ym]) ** 2, axis=1)))

out["expect"] = exp
with open("tests/fixtures/eval_metrics.json", "w") as f:
    json.dump(out, f, indent=None)
    f.write("\n")
print("wrote tests/fixtures/eval_metrics.json:", ", ".join(f"{k}={v:.6g}" for k, v in exp.items()))
