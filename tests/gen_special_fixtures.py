#!/usr/bin/env python3
"""Reference values for src/backend/special.c, computed with mpmath at 50
digits (SciPy agrees where it is accurate).  Writes tests/fixtures/special.txt:
one line per point, `function arg1 [arg2 [arg3]] expected`.

Run from the repository root:  python3 tests/gen_special_fixtures.py
"""
import mpmath as mp

mp.mp.dps = 50
rows = []

def add(name, args, value):
    rows.append((name, args, value))

for x in [1e-8, 1e-3, 0.1, 0.5, 1, 1.5, 2, 3.7, 10, 12.5, 100, 1e4, 1e8, -0.5, -1.5, -2.25, -10.3]:
    add("digamma", [x], mp.digamma(x))
    add("trigamma", [x], mp.polygamma(1, x))
for a, b in [(0.5, 0.5), (1, 1), (2, 3), (0.1, 10), (10, 0.1), (50, 60), (1e3, 1e3), (1e5, 2), (1e-3, 1e-3), (1e6, 1e6)]:
    add("lbeta", [a, b], mp.log(mp.beta(a, b)))
for a, x in [(0.1, 0.01), (0.5, 0.5), (1, 1), (2, 0.1), (2, 5), (5, 2), (10, 10), (10, 30), (50, 45),
             (100, 110), (100, 90), (1e3, 1e3), (1e3, 1050), (0.01, 3), (30, 1)]:
    add("gammainc_lower", [a, x], mp.gammainc(a, 0, x, regularized=True))
    add("gammainc_upper", [a, x], mp.gammainc(a, x, mp.inf, regularized=True))
for a, b, x in [(0.5, 0.5, 0.3), (1, 1, 0.7), (2, 3, 0.4), (10, 10, 0.5), (0.1, 5, 0.01), (5, 0.1, 0.99),
                (50, 40, 0.6), (100, 100, 0.45), (2, 8, 0.9), (0.5, 30, 0.05)]:
    add("betainc", [a, b, x], mp.betainc(a, b, 0, x, regularized=True))
for p in [1e-300, 1e-20, 1e-8, 0.001, 0.025, 0.1, 0.3, 0.5, 0.7, 0.975, 0.999, 1 - 1e-10]:
    # solve ncdf(x) = p directly: erfinv(2p - 1) loses p = 1e-300 to rounding
    guess = mp.sqrt(2) * mp.erfinv(2 * mp.mpf(p) - 1) if 1e-15 < p < 1 - 1e-15 else (-37 if p < 0.5 else 6.4)
    # solve in log space so the tiny tail converges: log ncdf(x) = log p
    add("ndtri", [p], mp.findroot(lambda x: mp.log(mp.ncdf(x)) - mp.log(p), guess))
for x in [-0.999999, -0.9, -0.5, -1e-10, 1e-12, 0.1, 0.5, 0.9, 0.99, 0.9999999]:
    add("erfinv", [x], mp.erfinv(x))
for x in [-1e-20, -1e-10, -0.1, -0.6931, -0.6932, -1, -10, -50, -700]:
    add("log1mexp", [x], mp.log(1 - mp.exp(x)))
for a, b in [(0, 0), (1, 2), (-1000, -1001), (700, 700), (-5, 30)]:
    add("logaddexp", [a, b], mp.log(mp.exp(a) + mp.exp(b)))
for x in [-800, -40, -1, 0, 1e-10, 1, 40, 800]:
    add("softplus", [x], mp.log(1 + mp.exp(x)))
    add("log_sigmoid", [x], -mp.log(1 + mp.exp(-x)))
    add("sigmoid", [x], 1 / (1 + mp.exp(-x)))

with open("tests/fixtures/special.txt", "w") as f:
    f.write("# function args... expected  (mpmath, 50 digits; tests/gen_special_fixtures.py)\n")
    for name, args, v in rows:
        f.write("%s %s %s\n" % (name, " ".join(repr(float(a)) for a in args), mp.nstr(v, 20, min_fixed=-1, max_fixed=-1)))
print(len(rows), "rows")
