#!/bin/sh
# VAE training throughput (issue: deep models): the VAE 784-400-20 of
# bench/vae/vae.ppl (batch 128, Adam, Trace_ELBO) in ppl against the same
# network and loss in PyTorch CPU (bench/vae/vae_torch.py, float32 and
# float64), one thread on both sides.  Throughput is measured by CPU time
# (user + sys), which stays meaningful on a shared machine; ppl's setup is
# removed by subtracting a run with 0 steps.  Medians of 3 runs.
# usage: bench/bench_vae.sh [path/to/ppl] [python-with-torch] [steps]
set -eu
PPL=${1:-build/ppl}
PY=${2:-python3}
STEPS=${3:-100}
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu() { # CPU seconds of a ppl run with $1 steps
    sed "s/STEPS/$1/" bench/vae/vae.ppl > "$tmp/vae.ppl"
    /usr/bin/time -f "%U %S" -o "$tmp/t" "$PPL" run "$tmp/vae.ppl" > /dev/null
    awk '{print $1 + $2}' "$tmp/t"
}
median3() { printf '%s\n%s\n%s\n' "$1" "$2" "$3" | sort -g | sed -n 2p; }
s0=$(median3 "$(cpu 0)" "$(cpu 0)" "$(cpu 0)")
s1=$(median3 "$(cpu "$STEPS")" "$(cpu "$STEPS")" "$(cpu "$STEPS")")
awk -v a="$s0" -v b="$s1" -v n="$STEPS" 'BEGIN {
    printf "ppl float64: %.0f images/s by CPU time (%.2f ms CPU/step over %d steps)\n", n * 128 / (b - a), (b - a) / n * 1e3, n }'
for dt in float32 float64; do
    for i in 1 2 3; do "$PY" bench/vae/vae_torch.py "$STEPS" $dt 2>/dev/null | grep '^torch'; done |
        sort -t: -k2 -g | sed -n 2p
done
