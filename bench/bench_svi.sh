#!/bin/sh
# Time per SVI step, ppl against Pyro (CPU torch), same models, guides,
# optimizer and seeds; one thread on both sides.  Pyro: a venv made with
# --system-site-packages over Debian's python3-torch, then
#   pip install --no-deps pyro-ppl==1.8.6 pyro-api opt_einsum
# usage: bench/bench_svi.sh [path/to/ppl] [path/to/python-with-pyro]
set -eu
PPL=${1:-build/ppl}
PY=${2:-python3}
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
for m in sensor eight_schools; do
    # 20000 steps per run; hyperfine's median over 5 runs, minus startup
    hyperfine -N --warmup 1 --runs 5 --export-json /tmp/ppl_svi_$m.json "$PPL run bench/svi/$m.ppl" >/dev/null
    med=$(python3 -c "import json,statistics;print(statistics.median(json.load(open('/tmp/ppl_svi_$m.json'))['results'][0]['times']))")
    python3 -c "print('$m ppl median %.1f us/step (20000 steps, startup included)' % ($med / 20000 * 1e6))"
    "$PY" bench/svi/pyro_svi.py "$m" 2000
done
