#!/bin/sh
# Golden diagnostics tests: every tests/golden/NAME.ppl is a bad input.
# `ppl run NAME.ppl` must exit with a status between 1 and 125 (no crash,
# no signal) and print exactly NAME.expected on stderr.
#
# usage: tests/golden/run.sh PATH/TO/ppl [--update]
#   --update rewrites the .expected files (review the diff before committing)
set -u
PPL=${1:?usage: run.sh PATH/TO/ppl [--update]}
UPDATE=${2:-}
DIR=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$DIR/../.." || exit 1

# Inputs too big to commit are generated here.
head -c 1000000 /dev/zero | tr '\0' x > "$TMP/huge_identifier.ppl"
printf ' = 1\n' >> "$TMP/huge_identifier.ppl"

pass=0
fail=0
for f in tests/golden/*.ppl "$TMP/huge_identifier.ppl"; do
    name=$(basename "$f" .ppl)
    exp="tests/golden/$name.expected"
    "$PPL" run "$f" > "$TMP/out" 2> "$TMP/err"
    status=$?
    # The temp path differs per run: show generated files by their name only.
    sed "s|$TMP/||g" "$TMP/err" > "$TMP/err2"
    if [ "$UPDATE" = "--update" ]; then
        cp "$TMP/err2" "$exp"
    fi
    if [ "$status" -lt 1 ] || [ "$status" -gt 125 ]; then
        echo "FAIL $name: exit status $status (want 1..125)"
        fail=$((fail + 1))
    elif [ ! -f "$exp" ]; then
        echo "FAIL $name: no $exp"
        fail=$((fail + 1))
    elif ! cmp -s "$TMP/err2" "$exp"; then
        echo "FAIL $name: stderr differs from $exp:"
        diff "$exp" "$TMP/err2" | head -20
        fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
done
echo "golden: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
