#!/bin/sh
# BNN SVI steps per second (issue: deep models), ppl against Pyro 1.8.6
# (CPU torch) on the same network, data, guide family, loss and optimizer:
#   small: 1-50-1 tanh, 500 points;  big: 10-100-100-1 relu, 1000 points;
# every weight and bias a Normal(0, 1) sample site, sigma ~ HalfNormal(1),
# full batch, Trace_ELBO with one particle, Adam(lr=0.01).
# ppl (bench/bnn/bnn.ppl) with AutoNormal, with BayesGuide (the same
# mean-field family, through distribution objects) and with BayesGuide and
# the local reparameterization; Pyro (bench/bnn/bnn_pyro.py): PyroModule /
# PyroSample with AutoNormal, float64 and float32.  One thread everywhere.
# CPU time (user + sys; ppl's from getrusage, bench/bnn/cputime.py): ppl's
# setup is removed by subtracting a 0-step run,
# Pyro's is outside its timed loop (after 50 warm-up steps; Pyro runs
# STEPS - 50 timed steps so both sides report the ELBO after STEPS steps).
# Medians of REPS runs, ppl and Pyro interleaved.  Last, per network, the
# ELBO that weight sampling reaches in 5x the steps (about the CPU time of
# the local reparameterization's run).
# usage: bench/bench_bnn.sh [path/to/ppl] [python-with-pyro] [REPS]
set -eu
PPL=${1:-build/ppl}
PY=${2:-/opt/bench-venv/bin/python}
REPS=${3:-3}
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset (OpenBLAS picks the kernels)}, one thread"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# ppl_cpu CONFIG GUIDE LR STEPS: CPU seconds of one run (ELBO line kept in $tmp/elbo)
ppl_cpu() {
    sed -e "s/SIZES/$SIZES/; s/NN/$N/; s/ACT/\"$ACT\"/; s/LR_FLAG/$3/; s/GUIDE/$2/; s/STEPS/$4/" \
        bench/bnn/bnn.ppl > "$tmp/b.ppl"
    python3 bench/bnn/cputime.py "$tmp/elbo_$1" "$PPL" run "$tmp/b.ppl"
}
for cfg in small big; do
    if [ $cfg = small ]; then SIZES="[1, 50, 1]"; PYS=1,50,1; ACT=tanh; N=500; STEPS=1000
    else SIZES="[10, 100, 100, 1]"; PYS=10,100,100,1; ACT=relu; N=1000; STEPS=300; fi
    : > "$tmp/r_setup"; : > "$tmp/r_auto"; : > "$tmp/r_mf"; : > "$tmp/r_lr"; : > "$tmp/r_p64"; : > "$tmp/r_p32"
    for r in $(seq "$REPS"); do
        ppl_cpu setup "AutoNormal(bnn)" false 0 >> "$tmp/r_setup"
        ppl_cpu auto "AutoNormal(bnn)" false "$STEPS" >> "$tmp/r_auto"
        "$PY" bench/bnn/bnn_pyro.py "$PYS" "$ACT" "$N" $((STEPS - 50)) float64 > "$tmp/p64" 2>/dev/null
        awk '{print $3}' "$tmp/p64" >> "$tmp/r_p64"
        ppl_cpu mf mf false "$STEPS" >> "$tmp/r_mf"
        ppl_cpu lr mf true "$STEPS" >> "$tmp/r_lr"
        "$PY" bench/bnn/bnn_pyro.py "$PYS" "$ACT" "$N" $((STEPS - 50)) float32 > "$tmp/p32" 2>/dev/null
        awk '{print $3}' "$tmp/p32" >> "$tmp/r_p32"
    done
    s0=$(median < "$tmp/r_setup")
    p64=$(median < "$tmp/r_p64")
    p32=$(median < "$tmp/r_p32")
    echo "== $cfg: $SIZES $ACT, $N points, $STEPS steps (ppl setup $s0 s CPU)"
    for g in auto mf lr; do
        t=$(median < "$tmp/r_$g")
        case $g in auto) label="ppl AutoNormal";; mf) label="ppl BayesGuide";; lr) label="ppl BayesGuide+local_reparam";; esac
        awk -v a="$s0" -v b="$t" -v n="$STEPS" -v p="$p64" -v q="$p32" -v l="$label" -v e="$(cat "$tmp/elbo_$g")" 'BEGIN {
            us = (b - a) / n * 1e6
            printf "%-30s %8.1f us/step CPU %8.0f steps/s  x%.1f vs pyro float64, x%.1f vs float32  (%s)\n",
                   l, us, 1e6 / us, p / us, q / us, e }'
    done
    awk -v p="$p64" -v e="$(awk '{print $7}' "$tmp/p64")" 'BEGIN { printf "%-30s %8.1f us/step CPU %8.0f steps/s  (elbo %s)\n", "pyro AutoNormal float64", p, 1e6 / p, e }'
    awk -v p="$p32" -v e="$(awk '{print $7}' "$tmp/p32")" 'BEGIN { printf "%-30s %8.1f us/step CPU %8.0f steps/s  (elbo %s)\n", "pyro AutoNormal float32", p, 1e6 / p, e }'
    # the local reparameterization costs about 5 weight-sampling steps a step
    # here: the ELBO weight sampling reaches in 5x the steps, at about the
    # same CPU time (one run: only the ELBO matters)
    t5=$(ppl_cpu mf5 mf false $((5 * STEPS)))
    awk -v a="$s0" -v b="$t5" -v n=$((5 * STEPS)) -v e="$(cat "$tmp/elbo_mf5")" 'BEGIN {
        printf "%-30s %8.2f s CPU for %d steps  (%s)\n", "ppl BayesGuide, 5x steps", b - a, n, e }'
    awk -v a="$s0" -v b="$(median < "$tmp/r_lr")" -v n="$STEPS" -v e="$(cat "$tmp/elbo_lr")" 'BEGIN {
        printf "%-30s %8.2f s CPU for %d steps  (%s)\n", "ppl BayesGuide+local_reparam", b - a, n, e }'
done
