#!/bin/sh
# `ppl svi --checkpoint S.json` for N steps, then `--resume S.json` for N more,
# gives exactly the parameters and summary table of one 2N-step run; `--out`
# keeps writing the plain parameter record; resuming from a missing or
# non-state file is a clear error.
# usage: tests/svi_resume.sh PATH/TO/ppl
set -u
PPL=${1:?usage: svi_resume.sh PATH/TO/ppl}
cd "$(dirname "$0")/.." || exit 1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RUN="$PPL svi examples/eight_schools.ppl --model schools --guide auto_normal --data examples/eight_schools.json --seed 7 --lr 0.02"
fail=0
$RUN --steps 600 --out "$T/full.json" > "$T/full.txt" || { echo "FAIL: reference run"; exit 1; }
$RUN --steps 300 --checkpoint "$T/s.json" > /dev/null || { echo "FAIL: first half"; exit 1; }
$RUN --steps 300 --resume "$T/s.json" --checkpoint "$T/s.json" --out "$T/res.json" > "$T/res.txt" ||
    { echo "FAIL: resumed half"; exit 1; }
cmp -s "$T/full.json" "$T/res.json" || { echo "FAIL: resumed parameters differ"; fail=1; }
# The table (every line but the final-ELBO line, which averages this call's steps).
grep -v '^final ELBO' "$T/full.txt" > "$T/a"; grep -v '^final ELBO' "$T/res.txt" > "$T/b"
cmp -s "$T/a" "$T/b" || { echo "FAIL: resumed summary differs"; diff "$T/a" "$T/b"; fail=1; }
# --out is the plain record of constrained parameters.
grep -q '^{"AutoNormal\.locs\.mu": ' "$T/full.json" || { echo "FAIL: --out is not the parameter record"; cat "$T/full.json"; fail=1; }
if $RUN --steps 10 --resume "$T/full.json" > /dev/null 2> "$T/err"; then
    echo "FAIL: resuming from a parameter record was accepted"; fail=1
elif ! grep -q 'error' "$T/err"; then
    echo "FAIL: no diagnostic for a bad resume file"; cat "$T/err"; fail=1
fi
if [ $fail -eq 0 ]; then echo "svi_resume: 1 passed, 0 failed"; else echo "svi_resume: 0 passed, 1 failed"; fi
exit $fail
