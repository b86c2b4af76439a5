"""Exact posterior moments of mu and tau in the eight schools model
(tests/unit/test_mcmc.c, eight_schools_noncentered), by quadrature.

mu ~ N(0, 5), tau ~ HalfCauchy(5), theta_j ~ N(mu, tau), y_j ~ N(theta_j, sigma_j).
Integrating the thetas out, y_j | mu, tau ~ N(mu, sqrt(sigma_j^2 + tau^2)), so
p(mu, tau | y) is a 2-D density; and given tau, mu is Gaussian (conjugate), so
mu integrates out in closed form too and one adaptive 1-D quadrature over tau
gives the moments of tau and of mu (E[mu | tau], Var[mu | tau]) to ~1e-10.
The non-centered parameterization has the same posterior for mu and tau.
usage: /opt/bench-venv/bin/python tests/gen_eight_schools_reference.py"""
import numpy as np
from scipy import integrate

y = np.array([28, 8, -3, 7, -1, 1, 18, 12], float)
s = np.array([15, 10, 16, 11, 9, 11, 10, 18], float)
m0, s0 = 0.0, 5.0   # prior of mu


def mu_given_tau(tau):
    """Posterior precision-weighted mean/var of mu given tau, and the log of
    p(y | tau) up to a constant (mu integrated out)."""
    v = s**2 + tau**2
    prec = 1 / s0**2 + np.sum(1 / v)
    mean = (m0 / s0**2 + np.sum(y / v)) / prec
    # log int N(mu; m0, s0) prod N(y_j; mu, sqrt(v_j)) dmu
    quad = m0**2 / s0**2 + np.sum(y**2 / v) - mean**2 * prec
    logml = -0.5 * (np.log(s0**2) + np.sum(np.log(v)) + np.log(prec)) - 0.5 * quad
    return mean, 1 / prec, logml


def logpost_tau(tau):
    # HalfCauchy(5) density up to a constant
    return mu_given_tau(tau)[2] - np.log1p((tau / 5.0) ** 2)


shift = logpost_tau(1.0)


def w(tau):
    return np.exp(logpost_tau(tau) - shift)


def moment(f):
    return integrate.quad(lambda t: w(t) * f(t), 0, np.inf, epsabs=0, epsrel=1e-12, limit=500)[0]


Z = moment(lambda t: 1.0)
Et = moment(lambda t: t) / Z
Et2 = moment(lambda t: t * t) / Z
Em = moment(lambda t: mu_given_tau(t)[0]) / Z
Em2 = moment(lambda t: mu_given_tau(t)[0] ** 2 + mu_given_tau(t)[1]) / Z
print("mu  mean %.10f sd %.10f" % (Em, np.sqrt(Em2 - Em**2)))
print("tau mean %.10f sd %.10f" % (Et, np.sqrt(Et2 - Et**2)))
