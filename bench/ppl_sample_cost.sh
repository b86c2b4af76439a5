#!/bin/sh
# bench/ppl_sample_cost.sh - CPU cost of a whole `ppl sample` process on eight
# schools (4 chains x (1000 warmup + 1000 draws), one thread, seed 1, --out CSVs
# and --summary JSON written) and of the same run with 1 draw per chain (the same
# warmup bits, so the difference is the sampling phase plus everything done per
# kept draw: its interpretation, the summary diagnostics, the CSV).  Several
# binaries side by side (e.g. before / after a change), runs interleaved; CPU
# time from `perf stat` task-clock (ms resolution, unlike time(1)'s 10 ms),
# medians of REPS (default 9).
# usage: sh bench/ppl_sample_cost.sh PPL_BINARY [PPL_BINARY ...]
set -eu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
T=${TMPDIR:-/tmp}/ppl_sample_cost.$$
mkdir -p "$T"
args="examples/eight_schools.ppl --model schools --data examples/eight_schools.json --threads 1 --seed 1 --chains 4 --warmup 1000"
ms() {  # ms BINARY SAMPLES : task-clock of one run in ms
    perf stat -x, -e task-clock -o "$T/stat" "$1" sample $args --samples "$2" --out "$T/d.csv" --summary "$T/s.json" >/dev/null 2>&1
    awk -F, '/task-clock/ {print $1}' "$T/stat"
}
for r in $(seq "${REPS:-9}"); do
    i=0
    for b in "$@"; do
        i=$((i + 1))
        echo "$i full $(ms "$b" 1000)" >> "$T/all"
        echo "$i warm $(ms "$b" 1)" >> "$T/all"
    done
done
i=0
for b in "$@"; do
    i=$((i + 1))
    full=$(awk -v i=$i '$1 == i && $2 == "full" {print $3}' "$T/all" | sort -n | awk '{v[NR]=$0} END {print v[int((NR+1)/2)]}')
    warm=$(awk -v i=$i '$1 == i && $2 == "warm" {print $3}' "$T/all" | sort -n | awk '{v[NR]=$0} END {print v[int((NR+1)/2)]}')
    echo "$b: whole process 1000 draws $full ms, 1 draw $warm ms, difference $(echo "$full $warm" | awk '{printf "%.1f", $1 - $2}') ms (median task-clock of ${REPS:-9})"
done
rm -rf "$T"
