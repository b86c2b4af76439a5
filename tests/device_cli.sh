#!/bin/sh
# `--device cpu|cuda` on ppl run, svi and sample: cpu gives the output of no
# flag; an unknown name is a usage error (exit 2); cuda is a usage error
# with the reason where this build or machine has none, and runs where it
# has one; a script's unknown device is an error at its location.
# usage: tests/device_cli.sh PATH/TO/ppl   (from the source root)
set -u
PPL=${1:?usage: device_cli.sh PATH/TO/ppl}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
say() { echo "FAIL $1"; cat "$T/out" "$T/err"; fail=1; }
SVI="svi examples/temperature.ppl --model weather --guide auto_normal --data examples/temperature.json --steps 200 --seed 2"
SAMPLE="sample examples/eight_schools.ppl --model schools --data examples/eight_schools.json --warmup 30 --samples 10 --chains 1 --seed 3"
for cmd in "run examples/temperature.ppl" "$SVI" "$SAMPLE"; do
    # shellcheck disable=SC2086
    $PPL $cmd > "$T/plain" 2>&1 || { cp "$T/plain" "$T/out"; : > "$T/err"; say "ppl $cmd"; continue; }
    # shellcheck disable=SC2086
    $PPL $cmd --device cpu > "$T/out" 2> "$T/err" || { say "ppl $cmd --device cpu: exit $?"; continue; }
    cmp -s "$T/plain" "$T/out" || say "ppl $cmd --device cpu: output differs from no --device"
    # shellcheck disable=SC2086
    $PPL $cmd --device tpu > "$T/out" 2> "$T/err"
    rc=$?
    [ $rc -eq 2 ] && grep -q 'error: --device must be cpu|cuda, got "tpu"' "$T/err" || say "ppl $cmd --device tpu: exit $rc"
    # shellcheck disable=SC2086
    $PPL $cmd --device cuda > "$T/out" 2> "$T/err"
    rc=$?
    if [ $rc -eq 2 ]; then
        grep -Eq '^error: --device cuda: (ppl was built without CUDA support; rebuild with -DPPL_CUDA=ON|no CUDA device found)' "$T/err" ||
            say "ppl $cmd --device cuda: exit 2 without the reason"
    elif [ $rc -ne 0 ]; then
        say "ppl $cmd --device cuda: exit $rc"
    fi
done
printf 'x = to([1.0, 2.0], "gpu")\n' > "$T/bad.ppl"
$PPL run "$T/bad.ppl" > "$T/out" 2> "$T/err"
rc=$?
[ $rc -eq 1 ] && grep -q 'error: to: unknown device "gpu" (devices: cpu, cuda)' "$T/err" &&
    grep -q 'bad.ppl:1:20' "$T/err" && grep -q '\^' "$T/err" || say "to(x, \"gpu\"): exit $rc"
printf 'x = [1.0, 2.0]\nprint(device(x))\nprint(device(to(x, "cpu")))\n' > "$T/ok.ppl"
$PPL run "$T/ok.ppl" > "$T/out" 2> "$T/err" && [ "$(cat "$T/out")" = "$(printf 'cpu\ncpu')" ] || say "device(x)"
if [ $fail -eq 0 ]; then echo "device_cli: 1 passed, 0 failed"; else echo "device_cli: 0 passed, 1 failed"; fi
exit $fail
