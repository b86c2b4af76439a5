#!/bin/sh
# bench/mixture_enum.sh - examples/mixture_enum.ppl's two-component Gaussian
# mixture (150 points, an assignment z per point in a plate) with z summed
# out by the sampler: ppl (bench/mixture_enum_model.ppl: two runs of the
# model per evaluation, per-point logsumexp) against Pyro's NUTS with
# parallel enumeration (bench/mixture_enum_pyro.py), and ppl's hand-
# marginalized form (bench/mixture_hand_model.ppl) for scale.
# 1 chain x (WARMUP + SAMPLES), one thread; CPU time (user+sys) medians of
# REPS runs, ppl and Pyro interleaved; time per gradient = CPU / leapfrogs for
# ppl (from the Stan CSV; it includes the per-draw discrete posterior), a
# timed loop over Pyro's potential_fn for Pyro; min bulk ESS of w, mu, sigma
# per CPU second.
# usage: sh bench/mixture_enum.sh [WARMUP SAMPLES REPS]  (repository root, after building build/)
set -eu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
W=${1:-500}; S=${2:-1000}; R=${3:-3}
PPL=${PPL:-build/ppl}
PY=${PY:-/opt/bench-venv/bin/python}
D=${MIXBENCH:-/tmp/mixbench}
mkdir -p "$D"
ppl_run() {  # ppl_run SEED MODEL.ppl: prints "cpu leapfrogs min_ess w mu0 mu1 sigma"
    /usr/bin/time -f "%U %S" -o "$D/ppl.t" "$PPL" sample "$2" --model mixture \
        --data examples/mixture.json --chains 1 --warmup "$W" --samples "$S" --threads 1 --seed "$1" \
        --out "$D/ppl.csv" --summary "$D/ppl.json" >/dev/null
    cpu=$(awk '{print $1 + $2}' "$D/ppl.t")
    "$PY" - "$D/ppl.csv" "$D/ppl.json" "$cpu" <<'PYEOF'
import csv, json, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
h = rows[0]
nl = sum(float(r[h.index("n_leapfrog__")]) for r in rows[1:])
s = json.load(open(sys.argv[2]))["summary"]
names = ("w", "mu[0]", "mu[1]", "sigma")
print(sys.argv[3], nl, min(s[n]["ess_bulk"] for n in names), *(f'{s[n]["mean"]:.4f}' for n in names))
PYEOF
}
: > "$D/ppl.txt"; : > "$D/pyro.txt"; : > "$D/hand.txt"
for r in $(seq "$R"); do
    ppl_run "$r" bench/mixture_enum_model.ppl >> "$D/ppl.txt"
    ppl_run "$r" bench/mixture_hand_model.ppl >> "$D/hand.txt"
    "$PY" bench/mixture_enum_pyro.py "$W" "$S" 2>/dev/null | tail -1 >> "$D/pyro.txt"
done
med() { sort -n | awk '{v[NR] = $0} END {print v[int((NR + 1) / 2)]}'; }
echo "1 chain x ($W warmup + $S draws); medians of $R runs by CPU"
cat "$D/ppl.txt" "$D/hand.txt" "$D/pyro.txt"
med < "$D/hand.txt" | awk '{printf "hand  cpu %.3f s  leapfrogs %d  per gradient %.1f us  min ESS %.0f  ESS/s %.0f  means w %s mu %s %s sigma %s\n", $1, $2, 1e6 * $1 / $2, $3, $3 / $1, $4, $5, $6, $7}'
med < "$D/ppl.txt" | awk '{printf "ppl   cpu %.3f s  leapfrogs %d  per gradient %.1f us  min ESS %.0f  ESS/s %.0f  means w %s mu %s %s sigma %s\n", $1, $2, 1e6 * $1 / $2, $3, $3 / $1, $4, $5, $6, $7}'
med < "$D/pyro.txt" | awk '{printf "pyro  cpu %.3f s  per gradient %.1f us (potential_fn loop)  min ESS %.0f  ESS/s %.1f  means w %s mu %s %s sigma %s\n", $1, $2, $3, $3 / $1, $4, $5, $6, $7}'
