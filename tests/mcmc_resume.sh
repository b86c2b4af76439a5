#!/bin/sh
# `ppl sample --checkpoint` stopped by Ctrl-C (SIGINT) or killed (SIGKILL)
# part way, then `--resume`d, writes exactly the draws of a run that was
# never stopped (whenever the stop came), and a damaged or mismatched
# checkpoint is a clear error.
# usage: tests/mcmc_resume.sh PATH/TO/ppl
set -u
PPL=${1:?usage: mcmc_resume.sh PATH/TO/ppl}
cd "$(dirname "$0")/.." || exit 1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
RUN="$PPL sample examples/eight_schools.ppl --model schools --data examples/eight_schools.json --chains 2 --warmup 1500 --samples 1500"
fail=0
$RUN --out "$T/ref.csv" > "$T/ref.txt" || { echo "FAIL reference run"; exit 1; }

# The CSVs without their "Elapsed Time" footers (CPU seconds that change
# from run to run; a resumed chain counts only the resumed part), which
# every file must have.
untimed() { # $1: file, $2: output
    [ "$(grep -c 'seconds (\(Warm-up\|Sampling\|Total\))$' "$1")" -eq 3 ] || { echo "FAIL $1: no Elapsed Time footer"; fail=1; }
    grep -v 'seconds (\(Warm-up\|Sampling\|Total\))$' "$1" > "$2"
}

same() { # $1: label
    for c in 1 2; do
        untimed "$T/ref_$c.csv" "$T/a.csv"
        untimed "$T/$1_$c.csv" "$T/b.csv"
        if ! cmp -s "$T/a.csv" "$T/b.csv"; then
            echo "FAIL $1: chain $c draws differ from the uninterrupted run"
            fail=1
        fi
    done
}

# The signal goes once the run has written its first checkpoint (the first
# save comes after 20 iterations, long before the end): not after a fixed
# delay, which on a loaded machine can come before the run has started (no
# checkpoint, nothing tested) or, on a fast one, after it has finished.
# The run is polled for at most 60 s.
wait_for_checkpoint() { # $1: file, $2: pid
    n=0
    while [ ! -f "$1" ] && kill -0 "$2" 2> /dev/null && [ $n -lt 6000 ]; do
        sleep 0.01
        n=$((n + 1))
    done
}

for sig in INT KILL; do
    ck="$T/ck_$sig"
    $RUN --checkpoint "$ck" --checkpoint-every 20 > /dev/null 2>&1 &
    pid=$!
    wait_for_checkpoint "$ck" $pid
    kill -$sig $pid 2> /dev/null
    wait $pid 2> /dev/null
    status=$?
    if [ ! -f "$ck" ]; then
        echo "FAIL $sig: no checkpoint (run status $status)"
        fail=1
        continue
    fi
    [ -n "${VERBOSE:-}" ] && echo "$sig after the first checkpoint: status $status, checkpoint $(grep -c saved "$ck")"
    # 0: the run had ended all the same (a very fast machine)
    if [ $sig = INT ] && [ $status -ne 0 ] && [ $status -ne 130 ]; then
        echo "FAIL INT: exit status $status (expected 130)"
        fail=1
    fi
    $RUN --resume "$ck" --out "$T/r$sig.csv" > "$T/r$sig.txt" || {
        echo "FAIL $sig: resume failed"
        fail=1
        continue
    }
    same "r$sig"
    cmp -s "$T/ref.txt" "$T/r$sig.txt" || { echo "FAIL $sig: summaries differ"; fail=1; }
done

# resuming a finished run only reports it
ck="$T/ck_done"
$RUN --checkpoint "$ck" > /dev/null || fail=1
$RUN --resume "$ck" --out "$T/done.csv" > /dev/null || fail=1
same done

# mismatched options and a damaged file are errors that say why
out=$($RUN --resume "$ck" --seed 2 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "seed 1, this run has seed 2" || { echo "FAIL seed mismatch: $out"; fail=1; }
out=$($RUN --resume "$ck" --samples 500 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "samples 1500, this run has 500" || { echo "FAIL samples mismatch: $out"; fail=1; }
head -c 3000 "$ck" > "$T/broken"
out=$($RUN --resume "$T/broken" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "cannot resume" || { echo "FAIL damaged file: $out"; fail=1; }
out=$($RUN --resume "$T/missing" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "missing" || { echo "FAIL missing file: $out"; fail=1; }

[ $fail -eq 0 ] && echo "mcmc resume: ok"
exit $fail
