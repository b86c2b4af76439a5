#!/usr/bin/env python3
"""Writes bench/svi/regression.json: 170 observations, 3 covariates, for the
5-latent regression SVI benchmark (alpha, beta[3], sigma).  Deterministic
(no random generator), so every framework reads the same numbers."""
import json, math, os

N, K = 170, 3
X = [[round(math.sin(0.37 * (i + 1) * (j + 1)) + 0.1 * j, 6) for j in range(K)] for i in range(N)]
beta = [0.8, -1.2, 0.5]
def noise(i):  # a fixed pseudo-random sequence in (-0.5, 0.5)
    v = math.sin(12.9898 * (i + 1)) * 43758.5453
    return v - math.floor(v) - 0.5
y = [round(1.5 + sum(X[i][j] * beta[j] for j in range(K)) + 0.6 * noise(i), 6) for i in range(N)]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "regression.json"), "w") as f:
    json.dump({"N": N, "X": X, "y": y}, f)
