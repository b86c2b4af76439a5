#!/bin/sh
# bench/enum_changepoint.sh - the coal-mining change point with the switch
# point sampled directly and summed out by the sampler (enumeration):
# ppl (examples/coal_mining_enum.ppl: 112 values in one run along a batch
# dimension) against Pyro's NUTS with parallel enumeration, and ppl's hand-
# marginalized form (examples/coal_mining.ppl, O(T) with cumsum) for scale.
# 1 chain x (WARMUP + SAMPLES), one thread; CPU time (user+sys) medians of
# REPS runs, ppl and Pyro interleaved; time per gradient = CPU / leapfrogs for
# ppl (from the Stan CSV), a timed loop over Pyro's potential_fn for Pyro;
# min bulk ESS of early/late per CPU second.
# usage: sh bench/enum_changepoint.sh [WARMUP SAMPLES REPS]  (repository root, after building build/)
set -eu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
W=${1:-500}; S=${2:-1000}; R=${3:-3}
PPL=${PPL:-build/ppl}
PY=${PY:-/opt/bench-venv/bin/python}
D=${ENUMBENCH:-/tmp/enumbench}
mkdir -p "$D"
ppl_run() {  # ppl_run FILE.ppl TAG: prints "cpu leapfrogs min_ess early late"
    /usr/bin/time -f "%U %S" -o "$D/$2.t" "$PPL" sample "$1" --model changepoint --data examples/coal_mining.json \
        --chains 1 --warmup "$W" --samples "$S" --threads 1 --seed 1 --out "$D/$2.csv" --summary "$D/$2.json" >/dev/null
    cpu=$(awk '{print $1 + $2}' "$D/$2.t")
    "$PY" - "$D/$2.csv" "$D/$2.json" "$cpu" <<'PYEOF'
import csv, json, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
h = rows[0]
nl = sum(float(r[h.index("n_leapfrog__")]) for r in rows[1:])
s = json.load(open(sys.argv[2]))["summary"]
get = lambda n: s[n]
print(sys.argv[3], nl, min(get("early")["ess_bulk"], get("late")["ess_bulk"]), get("early")["mean"], get("late")["mean"])
PYEOF
}
: > "$D/enum.txt"; : > "$D/hand.txt"; : > "$D/pyro.txt"
for r in $(seq "$R"); do
    ppl_run examples/coal_mining_enum.ppl enum >> "$D/enum.txt"
    "$PY" bench/enum_changepoint_pyro.py "$W" "$S" >> "$D/pyro.txt"
    ppl_run examples/coal_mining.ppl hand >> "$D/hand.txt"
done
med() { sort -n | awk '{v[NR] = $0} END {print v[int((NR + 1) / 2)]}'; }
echo "1 chain x ($W warmup + $S draws); medians of $R runs by CPU"
for t in enum hand; do
    med < "$D/$t.txt" | awk -v t="$t" '{printf "ppl %-5s cpu %.3f s  leapfrogs %d  per gradient %.1f us  min ESS %.0f  ESS/s %.0f  early %.4f late %.4f\n", t, $1, $2, 1e6 * $1 / $2, $3, $3 / $1, $4, $5}'
done
med < "$D/pyro.txt" | awk '{printf "pyro enum  cpu %.3f s  per gradient %.1f us (potential_fn loop)  min ESS %.0f  ESS/s %.1f  early %s late %s\n", $1, $2, $3, $3 / $1, $4, $5}'
