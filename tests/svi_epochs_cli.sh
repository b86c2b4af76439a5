#!/bin/sh
# `ppl svi --epochs E --batch-size B --validation V.json --patience P`: the
# epochs run, the summary table says how they ended, the summary JSON lists
# the per-epoch ELBOs; option errors are usage errors (exit 2), a minibatch
# larger than the plate is a program error (exit 1).
# usage: tests/svi_epochs_cli.sh PATH/TO/ppl
set -u
PPL=${1:?usage: svi_epochs_cli.sh PATH/TO/ppl}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat > "$T/m.ppl" <<'PPL'
model m(y) {
    sample mu ~ Normal(0.0, 10.0)
    plate data(len(y), subsample=3) as idx {
        observe y[idx] ~ Normal(mu, 1.0)
    }
}
PPL
echo '{"y": [1.0, 2.0, 0.5, 1.5, 3.0, 2.5, 1.2, 0.8, 2.2, 1.9]}' > "$T/d.json"
echo '{"y": [1.1, 2.1, 1.4]}' > "$T/v.json"
RUN="$PPL svi $T/m.ppl --model m --data $T/d.json --seed 3"
fail=0
check() { # description, then the command's expected exit status, then the command
    what=$1; want=$2; shift 2
    "$@" > "$T/out" 2> "$T/err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL $what: exit status $got, want $want"; cat "$T/out" "$T/err"; fail=1; return 1
    fi
    return 0
}
if check "epochs run" 0 $RUN --epochs 300 --batch-size 4 --validation "$T/v.json" --patience 10 --lr 0.05 \
        --summary "$T/s.json"; then
    grep -Eq '^epochs: [0-9]+ \(stopped early\); best epoch [0-9]+: train ELBO -[0-9.]+, validation ELBO -[0-9.]+ \(its parameters restored\)$' "$T/out" ||
        { echo "FAIL: no epochs line in the table"; cat "$T/out"; fail=1; }
    grep -q '"epochs": {"train_elbo": \[' "$T/s.json" && grep -q '"stopped_early": true' "$T/s.json" ||
        { echo "FAIL: no epochs in the summary JSON"; cat "$T/s.json"; fail=1; }
fi
check "epochs without validation" 0 $RUN --epochs 3 && grep -q '^epochs: 3; best epoch' "$T/out" ||
    { echo "FAIL: 3 epochs"; cat "$T/out"; fail=1; }
check "--patience alone" 2 $RUN --patience 3 && grep -q 'error: --patience needs --epochs' "$T/err" || fail=1
check "--steps and --epochs" 2 $RUN --steps 3 --epochs 3 && grep -q 'exclude each other' "$T/err" || fail=1
check "--min-delta < 0" 2 $RUN --epochs 3 --patience 2 --min-delta -1 && grep -q 'needs a number >= 0' "$T/err" || fail=1
check "--batch-size 0" 2 $RUN --epochs 3 --batch-size 0 || fail=1
check "--batch-size > N" 1 $RUN --epochs 3 --batch-size 11 &&
    grep -q 'error: svi: batch size 11 is larger than plate "data" (size 10)' "$T/err" || { cat "$T/err"; fail=1; }
check "missing validation file" 1 $RUN --epochs 3 --validation "$T/none.json" || fail=1
if [ $fail -eq 0 ]; then echo "svi_epochs_cli: 1 passed, 0 failed"; else echo "svi_epochs_cli: 0 passed, 1 failed"; fi
exit $fail
