#!/bin/sh
# HMM benchmark (issue: HMM): ppl's forward, gradient, forward-backward,
# Viterbi and Baum-Welch against a plain C scaled-forward loop
# (bench/bench_hmm.c), hmmlearn (bench/hmm_peers.py) and pomegranate
# (bench/hmm_pomegranate.py, when it imports), one thread each.
# usage: bench/bench_hmm.sh [build-dir] [python-with-hmmlearn] [K]
#   build-dir: a configured and built ppl tree (default: build)
#   K: run a single K (default: all of 2 3 8 32 64 256)
# ($BUILD/bench_hmm K bw: only the forward and Baum-Welch, with their ratio)
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
PY=${2:-/opt/bench-venv/bin/python}
K=${3:-}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cmake --build "$BUILD" --target ppl >/dev/null
gcc -O2 -std=gnu11 -Iinclude -Isrc -Isrc/backend -Isrc/runtime -Istdlib -Isrc/infer \
    bench/bench_hmm.c "$BUILD/libppl.a" -o "$BUILD/bench_hmm" -lopenblas -llapacke -lm -lpthread
echo "## ppl and the plain C loop"
"$BUILD/bench_hmm" ${K:+"$K"}
echo "## hmmlearn"
"$PY" bench/hmm_peers.py ${K:+"$K"}
echo "## pomegranate"
"$PY" bench/hmm_pomegranate.py ${K:+"$K"}   # prints a comment line when not installed
