#!/usr/bin/env python3
"""gen_npy_fixtures.py - NPY files written by NumPy itself for
tests/unit/test_npy.c (an independent reference for the reader in
src/runtime/data_npy.c).  Values are simple formulas the test recomputes.

Run (with numpy, e.g. /opt/bench-venv/bin/python):
    python tests/gen_npy_fixtures.py
"""
import os
import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "npy")
os.makedirs(OUT, exist_ok=True)


def save(name, a, version=None):
    path = os.path.join(OUT, name)
    if version is None:
        np.save(path, a)
    else:
        with open(path, "wb") as f:
            np.lib.format.write_array(f, a, version=version)


# element k of every array is f(k) = (k - 2.5) * 1.25 (or its integer cast)
k = np.arange(6)
save("f8_2x3.npy", ((k - 2.5) * 1.25).reshape(2, 3).astype("<f8"))
save("f4_6.npy", ((k - 2.5) * 1.25).astype("<f4"))
save("i8_3x2.npy", (k * 7 - 20).reshape(3, 2).astype("<i8"))
save("i4_2x1x3.npy", (k * 7 - 20).reshape(2, 1, 3).astype("<i4"))
save("u1_6.npy", (k * 50).astype("u1"))
save("bool_6.npy", (k % 2 == 1))
save("scalar.npy", np.array(3.75))
save("v2_f8_2x3.npy", ((k - 2.5) * 1.25).reshape(2, 3).astype("<f8"), version=(2, 0))
save("empty_0x3.npy", np.zeros((0, 3)))
save("bad_fortran.npy", np.asfortranarray(np.arange(6.0).reshape(2, 3)))
save("bad_bigendian.npy", np.arange(3.0).astype(">f8"))
save("bad_complex.npy", np.arange(3.0).astype(np.complex128))
with open(os.path.join(OUT, "f8_2x3.npy"), "rb") as f:
    data = f.read()
with open(os.path.join(OUT, "bad_truncated.npy"), "wb") as f:
    f.write(data[:-5])
with open(os.path.join(OUT, "bad_magic.npy"), "wb") as f:
    f.write(b"P6 not an npy file at all")
