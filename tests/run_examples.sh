#!/bin/sh
# Runs every examples/*.ppl with `ppl run` and checks its output against
# the `# expect: REGEX` lines in the file (each must match some output line;
# extended regular expressions).  An example without expect lines must still
# exit 0.
# usage: tests/run_examples.sh PATH/TO/ppl
set -u
PPL=${1:?usage: run_examples.sh PATH/TO/ppl}
cd "$(dirname "$0")/.." || exit 1
pass=0
fail=0
for f in examples/*.ppl; do
    out=$("$PPL" run "$f" 2>&1)
    status=$?
    if [ $status -ne 0 ]; then
        echo "FAIL $f: exit status $status"
        echo "$out" | head -20
        fail=$((fail + 1))
        continue
    fi
    ok=1
    grep '^# expect: ' "$f" | sed 's/^# expect: //' > /tmp/ppl_expect.$$
    while IFS= read -r re; do
        if ! printf '%s\n' "$out" | grep -Eq -- "$re"; then
            echo "FAIL $f: no output line matches /$re/"
            ok=0
        fi
    done < /tmp/ppl_expect.$$
    rm -f /tmp/ppl_expect.$$
    if [ $ok -eq 1 ]; then pass=$((pass + 1)); else
        echo "$out" | head -20
        fail=$((fail + 1))
    fi
done
echo "examples: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
