#!/bin/sh
# Builds and runs bench_stan_scalar.cpp against Stan Math from the Debian
# package r-cran-stanheaders (with libeigen3-dev and libboost-dev), beside
# the same measurement of ppl (bench/bench_ops.c, section 2).
# usage: sh bench/stan/run.sh   (from the repository root, after building build/)
set -eu
STAN=/usr/lib/R/site-library/StanHeaders/include
g++ -O3 -DNDEBUG -std=c++14 -I"$STAN" -I/usr/include/eigen3 -DBOOST_DISABLE_ASSERTS \
    -Wno-ignored-attributes -Wno-deprecated-declarations \
    bench/stan/bench_stan_scalar.cpp -o /tmp/bench_stan_scalar
/tmp/bench_stan_scalar
