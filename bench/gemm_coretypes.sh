#!/bin/sh
# GEMM under the OpenBLAS kernel sets that run on this CPU: the default
# detection and OPENBLAS_CORETYPE overrides, each checked against a triple
# loop before it is timed (bench_gemm exits 1 on wrong results), rounds
# interleaved so drift hits every kernel set alike.
# usage: sh bench/gemm_coretypes.sh [max_n] [rounds]   (from the repository root)
set -u
MAXN=${1:-1024}
ROUNDS=${2:-3}
gcc -O2 -std=gnu11 -Isrc/backend -I/usr/include/x86_64-linux-gnu/openblas-pthread \
    bench/bench_gemm.c src/backend/*.c -o /tmp/bench_gemm -lopenblas -llapacke -lm || exit 1
r=1
while [ $r -le "$ROUNDS" ]; do
    for ct in default Haswell SkylakeX Cooperlake Zen Sandybridge; do
        echo "=== round $r OPENBLAS_CORETYPE=$ct"
        if [ $ct = default ]; then
            OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /tmp/bench_gemm "$MAXN"
        else
            OPENBLAS_CORETYPE=$ct OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /tmp/bench_gemm "$MAXN"
        fi
    done
    r=$((r + 1))
done
