#!/bin/sh
# Training by epochs (issue: deep models, "Data"): the digits VAE of
# bench/epochs/vae_epochs.ppl (64-256-8, 400 images in shuffled minibatches
# of 64, validation ELBO on 297 images with 2 particles after each epoch) in
# ppl against the same loop in Pyro (bench/epochs/vae_epochs_pyro.py:
# torch.randperm minibatches through pyro.plate(subsample=), evaluate_loss),
# float64, one thread on both sides.  CPU time (user + sys); ppl's setup is
# removed by subtracting a 1-epoch run.  Also ppl by epochs without
# validation and by plain steps= (7 random minibatches per epoch): the
# driver's own cost.  Runs interleaved, medians of 3.
# usage: bench/bench_epochs.sh [path/to/ppl] [python-with-pyro] [epochs]
set -eu
PPL=${1:-build/ppl}
PY=${2:-/opt/bench-venv/bin/python}
E=${3:-40}
cd "$(dirname "$0")/.."
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu() { # CPU seconds of a ppl run: mode, epochs
    sed "s/\"MODE\"/\"$1\"/; s/EPOCHS/$2/" bench/epochs/vae_epochs.ppl > "$tmp/v.ppl"
    /usr/bin/time -f "%U %S" -o "$tmp/t" "$PPL" run "$tmp/v.ppl" > "$tmp/out"
    awk '{print $1 + $2}' "$tmp/t"
}
median3() { printf '%s\n%s\n%s\n' "$1" "$2" "$3" | sort -g | sed -n 2p; }
for r in 1 2 3; do
    eval "b$r=\$(cpu epochs 1)"
    eval "e$r=\$(cpu epochs $((E + 1)))"
    tail -1 "$tmp/out" > "$tmp/ppl_val"
    eval "n$r=\$(cpu noval $((E + 1)))"
    eval "s$r=\$(cpu steps $((E + 1)))"
    eval "sb$r=\$(cpu steps 1)"
    eval "p$r=\$(\"$PY\" bench/epochs/vae_epochs_pyro.py $E | tee \"$tmp/pyro_out\" | sed 's/.*cpu \([0-9.]*\) s.*/\1/')"
done
b=$(median3 "$b1" "$b2" "$b3"); e=$(median3 "$e1" "$e2" "$e3"); n=$(median3 "$n1" "$n2" "$n3")
s=$(median3 "$s1" "$s2" "$s3"); sb=$(median3 "$sb1" "$sb2" "$sb3"); p=$(median3 "$p1" "$p2" "$p3")
echo "last epoch: $(cat "$tmp/ppl_val") | $(cat "$tmp/pyro_out")"
awk -v b="$b" -v e="$e" -v n="$n" -v s="$s" -v sb="$sb" -v p="$p" -v E="$E" 'BEGIN {
    pe = (e - b) / E; pn = (n - b) / E; ps = (s - sb) / E
    printf "ppl epochs + validation: %.2f ms CPU/epoch (%.0f images/s incl. validation)\n", pe * 1e3, 400 / pe
    printf "ppl epochs, no validation: %.2f ms CPU/epoch; ppl steps= (7 per epoch): %.2f ms\n", pn * 1e3, ps * 1e3
    printf "pyro epochs + validation: %.2f ms CPU/epoch (%.0f images/s)\n", p * 1e3, 400 / p
    printf "ratio pyro / ppl: %.1fx\n", p / pe }'
