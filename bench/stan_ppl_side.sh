#!/bin/sh
# bench/stan_ppl_side.sh - the ppl side of bench/hmm_stan.sh and bench/mcmc_stan.sh:
# `ppl sample` with 4 chains x (1000 warmup + 1000 draws), one thread, seed 1,
# Stan CSVs to PREFIX_1.csv ... PREFIX_4.csv, summary JSON to PREFIX.summary.json, and
# PREFIX.times = "cpu wall" (CPU: perf stat task-clock where perf runs, else user+sys; wall
# seconds; median of PPL_REPS = 3 runs) of that run, of the same run with
# 1 draw (the same warmup bits: the sampling phase costs the difference), and of
# a 1-chain, no-warmup, 1-draw run (time to first draw; mean of 20).
# usage: sh bench/stan_ppl_side.sh FILE.ppl MODEL DATA.json PREFIX
set -eu
PPL=${PPL:-build/ppl}
f=$1; m=$2; d=$3; p=$4
# CPU time: perf stat's task-clock (0.01 ms resolution) where perf runs; time(1)'s user + sys
# (10 ms resolution: too coarse for eight schools, whose sampling phase is some 30 ms) otherwise
if perf stat -x, -e task-clock -o /dev/null true 2>/dev/null; then PERF=1; else PERF=0; fi
timed() {  # timed CMD... ; runs it, writes "cpu wall" (seconds) to $p.c
    if [ $PERF = 1 ]; then
        perf stat -x, -e task-clock -o "$p.pc" /usr/bin/time -f "%e" -o "$p.t" "$@"
        awk -F, '/task-clock/ {c = $1 / 1000} END {getline w < "'"$p.t"'"; printf "%.4f %.3f", c, w}' "$p.pc" > "$p.c"
    else
        /usr/bin/time -f "%U %S %e" -o "$p.t" "$@"
        awk '{printf "%.3f %.3f", $1 + $2, $3}' "$p.t" > "$p.c"
    fi
}
run() {  # run OUTFILE ARGS... ; prints "cpu wall"
    o=$1; shift
    timed "$PPL" sample "$f" --model "$m" --data "$d" --threads 1 --seed 1 "$@" > "$o"
    cat "$p.c"
}
med() { sort -n | awk '{v[NR] = $0} END {print v[int((NR + 1) / 2)]}'; }  # median line (by CPU)
fulls=""; warms=""
for r in $(seq "${PPL_REPS:-3}"); do  # alternating; medians of PPL_REPS (default 3) by CPU time
    fulls="$fulls$(run "$p.out" --chains 4 --warmup 1000 --samples 1000 --out "$p.csv" --summary "$p.summary.json")
"
    warms="$warms$(run /dev/null --chains 4 --warmup 1000 --samples 1 --out "$p.w.csv")
"
done
full=$(printf "%s" "$fulls" | med); warm=$(printf "%s" "$warms" | med)
# time to first draw: 20 processes in turn (CPU time of one is below time(1)'s 10 ms resolution)
timed sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    \"$PPL\" sample \"$f\" --model \"$m\" --data \"$d\" --threads 1 --seed 1 --chains 1 --warmup 0 --samples 1 >/dev/null 2>&1; done"
first=$(awk '{printf "%.4f %.4f", $1 / 20, $2 / 20}' "$p.c")
echo "$full $warm $first" > "$p.times"
cat "$p.out"
echo "ppl times (cpu wall): 1000 draws $full; 1 draw $warm; first draw $first (medians; all 1000-draw runs:" $fulls "; 1-draw:" $warms ")"
