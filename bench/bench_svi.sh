#!/bin/sh
# Time per SVI step, ppl against Pyro (CPU torch) and NumPyro (jitted, JAX
# CPU), same models, guides, optimizer; float64 and one thread everywhere.
# Models: the sensor (hand-written guide), eight schools non-centered
# (AutoNormal), and a 5-latent regression with 170 observations
# (bench/svi/regression.json, from gen_regression.py) with AutoNormal and
# AutoMultivariateNormal.  ppl: hyperfine's median of whole runs of 20000
# steps / 20000 (start-up included).  Pyro / NumPyro: median of 3 repeats of
# STEPS steps after a warm-up; NumPyro's compile time is reported apart.
# usage: bench/bench_svi.sh [path/to/ppl] [python-with-pyro-and-numpyro] [STEPS]
set -eu
PPL=${1:-build/ppl}
PY=${2:-/opt/bench-venv/bin/python}
STEPS=${3:-2000}
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
for m in sensor eight_schools regression_normal regression_mvn; do
    hyperfine -N --warmup 1 --runs 5 --export-json /tmp/ppl_svi_$m.json "$PPL run bench/svi/$m.ppl" >/dev/null
    elbo=$("$PPL" run "bench/svi/$m.ppl")
    python3 -c "
import json, statistics
r = json.load(open('/tmp/ppl_svi_$m.json'))['results'][0]
print('$m ppl median %.1f us/step wall, %.1f us/step CPU (user; 20000 steps, startup included)  (final ELBO %.3f)'
      % (statistics.median(r['times']) / 20000 * 1e6, r['user'] / 20000 * 1e6, $elbo))"
    "$PY" bench/svi/pyro_svi.py "$m" "$STEPS" 2>/dev/null
    "$PY" bench/svi/numpyro_svi.py "$m" "$STEPS" 2>/dev/null
done
