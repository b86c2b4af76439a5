#!/usr/bin/env python3
"""Generates tests/fixtures/linalg.txt: inputs and NumPy results for
tests/unit/test_linalg.c.  Run from the repository root:
    python3 tests/gen_linalg_fixtures.py
Format: per tensor one line "name ndim d0 d1 ..." then one line of values
(row-major, %.17g)."""
import numpy as np

rng = np.random.default_rng(20240611)
out = []


def put(name, a):
    a = np.asarray(a, dtype=np.float64)
    out.append("%s %d %s" % (name, a.ndim, " ".join(str(d) for d in a.shape)))
    out.append(" ".join("%.17g" % v for v in a.ravel()))


def spd(*shape):
    x = rng.standard_normal(shape)
    n = shape[-1]
    return x @ np.swapaxes(x, -1, -2) + n * np.eye(n)


# matmul: broadcast batches, vectors on either side, dot
a = rng.standard_normal((2, 1, 3, 4)); b = rng.standard_normal((5, 4, 2))
put("mm_a", a); put("mm_b", b); put("mm_ab", a @ b)
v4 = rng.standard_normal(4); m43 = rng.standard_normal((4, 3)); m34 = rng.standard_normal((3, 4))
put("mm_v4", v4); put("mm_m43", m43); put("mm_m34", m34)
put("mm_v4_m43", v4 @ m43); put("mm_m34_v4", m34 @ v4); put("mm_v4_v4", v4 @ v4)
b234 = rng.standard_normal((2, 3, 4)); v3 = rng.standard_normal(3)
put("mm_b234", b234); put("mm_v3", v3)
put("mm_b234_v4", b234 @ v4); put("mm_v3_b234", v3 @ b234)
# transposed operands: (m34^T) @ (b234[0])
put("mm_m34T_m34", m34.T @ m34)

# cholesky
c = spd(4, 4); put("chol_a", c); put("chol_l", np.linalg.cholesky(c))
cb = spd(2, 3, 3); put("chol_ab", cb); put("chol_lb", np.linalg.cholesky(cb))

# triangular solves
L = np.tril(rng.standard_normal((3, 3))) + 3 * np.eye(3)
U = np.triu(rng.standard_normal((3, 3))) + 3 * np.eye(3)
bv = rng.standard_normal(3); bm = rng.standard_normal((3, 2))
put("tri_l", L); put("tri_u", U); put("tri_bv", bv); put("tri_bm", bm)
put("tri_l_bv", np.linalg.solve(L, bv)); put("tri_l_bm", np.linalg.solve(L, bm))
put("tri_u_bm", np.linalg.solve(U, bm)); put("tri_lT_bv", np.linalg.solve(L.T, bv))
Lb = np.tril(rng.standard_normal((2, 3, 3))) + 3 * np.eye(3)
put("tri_lb", Lb); put("tri_lb_bm", np.linalg.solve(Lb, bm))

# logdet and inverse
g = rng.standard_normal((2, 3, 3)); put("ld_a", g)
put("ld_out", np.linalg.slogdet(g)[1])
h = rng.standard_normal((3, 3)); put("inv_a", h); put("inv_out", np.linalg.inv(h))

with open("tests/fixtures/linalg.txt", "w") as f:
    f.write("\n".join(out) + "\n")
