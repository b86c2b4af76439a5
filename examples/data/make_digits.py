#!/usr/bin/env python3
"""make_digits.py - convert the 8x8 handwritten digits that Debian's
python3-sklearn ships (sklearn/datasets/data/digits.csv.gz: 1797 images, 64
pixel values 0..16 and a label per row; the UCI "optdigits" test set) into
NPY files for examples/vae_digits.ppl:

    digits_train.npy  float32 [1497, 64]  pixels / 16, in [0, 1]
    digits_test.npy   float32 [300, 64]
    digits_train_labels.npy, digits_test_labels.npy  uint8

The split is a fixed shuffle (random.Random(0)).  Only the standard library
is used (NPY version 1 is written by hand), so numpy is not needed.

Run:  python3 examples/data/make_digits.py [path/to/digits.csv.gz]
"""
import csv
import gzip
import os
import random
import struct
import sys

SRC = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
OUT = os.path.dirname(os.path.abspath(__file__))


def write_npy(path, descr, shape, values, fmt):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, "".join("%d, " % s for s in shape) if len(shape) > 1 else "%d," % shape[0])
    # pad so that the data starts on a 64-byte boundary, ending in a newline
    total = 10 + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00")
        f.write(struct.pack("<H", len(header)))
        f.write(header.encode("ascii"))
        f.write(struct.pack("<%d%s" % (len(values), fmt), *values))


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else SRC
    with gzip.open(src, "rt") as f:
        rows = [[float(v) for v in r] for r in csv.reader(f) if r]
    assert len(rows) == 1797 and all(len(r) == 65 for r in rows), "unexpected digits.csv.gz layout"
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    parts = {"train": order[:1497], "test": order[1497:]}
    for name, idx in parts.items():
        pix = [rows[i][j] / 16.0 for i in idx for j in range(64)]
        lab = [int(rows[i][64]) for i in idx]
        write_npy(os.path.join(OUT, "digits_%s.npy" % name), "<f4", (len(idx), 64), pix, "f")
        write_npy(os.path.join(OUT, "digits_%s_labels.npy" % name), "|u1", (len(idx),), lab, "B")
        print("wrote digits_%s.npy: %d images" % (name, len(idx)))


if __name__ == "__main__":
    main()
