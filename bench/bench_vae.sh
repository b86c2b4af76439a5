#!/bin/sh
# VAE training throughput (issue: deep models): the VAE 784-400-20 of
# bench/vae/vae.ppl (batch 128, Adam, Trace_ELBO) in ppl at float64 and at
# float32 (MLP(dtype="float32") and float32 images), against the same
# network and loss in PyTorch CPU (bench/vae/vae_torch.py, float32 and
# float64) and against Pyro's VAE example written for the same network
# (bench/vae/vae_pyro.py, float32), all in one run, interleaved round by
# round, with 1 and then 2 threads on every side (OPENBLAS_NUM_THREADS and
# OMP_NUM_THREADS for ppl, torch.set_num_threads for the peers) and the
# same OpenBLAS kernel set (OPENBLAS_CORETYPE as given in the environment;
# the script prints the kernel set OpenBLAS chose; OMP_WAIT_POLICY=PASSIVE).  Throughput is images
# per second by CPU time (user + sys), which stays meaningful on a shared
# machine; wall-clock throughput is printed too.  ppl's setup is removed by
# subtracting a run with 0 steps; the peers time their steps after 20
# warm-up steps.  Medians over the rounds.
# usage: bench/bench_vae.sh [path/to/ppl] [python-with-torch-and-pyro] [steps] [rounds]
# THREADS (default "1 2") and SIDES (default every side: ppl_float64
# ppl_float32 torch_float32 torch_float64 pyro_float32) choose a part, e.g.
#   THREADS=1 SIDES="ppl_float32 torch_float32" bench/bench_vae.sh
set -eu
THREADS=${THREADS:-1 2}
SIDES=${SIDES:-ppl_float64 ppl_float32 torch_float32 torch_float64 pyro_float32}
has() { case " $SIDES " in *" $1 "*) return 0 ;; esac; return 1; }
PPL=${1:-build/ppl}
PY=${2:-/opt/bench-venv/bin/python}
STEPS=${3:-100}
ROUNDS=${4:-5}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
core=$("$PY" -c 'import ctypes
l = ctypes.CDLL("libopenblas.so.0")
l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' 2>/dev/null || echo unknown)
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}: OpenBLAS kernels $core; $STEPS steps, $ROUNDS rounds"
# CPU and wall seconds of a ppl run: $1 steps, $2 dtype
ppl_time() {
    sed -e "s/STEPS/$1/" -e "s/DTYPE/$2/g" bench/vae/vae.ppl > "$tmp/vae.ppl"
    /usr/bin/time -f "%U %S %e" -o "$tmp/t" "$PPL" run "$tmp/vae.ppl" > /dev/null
    awk '{print $1 + $2, $3}' "$tmp/t"
}
# "images/s by CPU time" and "by wall time" from a peer's output line
peer() { sed -n 's/^[a-z]* [a-z0-9]*: \([0-9]*\) images\/s by CPU time, \([0-9]*\) by wall time.*/\1 \2/p'; }
for T in $THREADS; do
    # passive waiting: idle OpenMP threads sleep instead of spinning (with
    # spinning, torch's second thread burns a core of this shared machine)
    export OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T MKL_NUM_THREADS=$T OMP_WAIT_POLICY=PASSIVE
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        r=$((r + 1))
        for dt in float64 float32; do
            has ppl_$dt || continue
            set -- $(ppl_time 0 $dt) $(ppl_time "$STEPS" $dt)
            awk -v a="$1" -v aw="$2" -v b="$3" -v bw="$4" -v n="$STEPS" -v t=$T -v d=$dt 'BEGIN {
                printf "%d ppl_%s %.0f %.0f\n", t, d, n * 128 / (b - a), n * 128 / (bw - aw) }' >> "$tmp/res"
        done
        for dt in float32 float64; do
            has torch_$dt || continue
            echo "$T torch_$dt $("$PY" bench/vae/vae_torch.py "$STEPS" $dt $T 2>/dev/null | peer)" >> "$tmp/res"
        done
        has pyro_float32 || continue
        echo "$T pyro_float32 $("$PY" bench/vae/vae_pyro.py "$STEPS" $T 2>/dev/null | peer)" >> "$tmp/res"
    done
done
# medians per thread count and side, then the ratios
median() { sort -g | awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for T in $THREADS; do
    for s in $SIDES; do
        c=$(awk -v t=$T -v s=$s '$1 == t && $2 == s {print $3}' "$tmp/res" | median)
        w=$(awk -v t=$T -v s=$s '$1 == t && $2 == s {print $4}' "$tmp/res" | median)
        echo "$T $s $c $w"
    done
done > "$tmp/med"
awk -v sides="$SIDES" -v threads="$THREADS" '
function ratio(a, b) { return b > 0 ? sprintf("%14.2f", a / b) : sprintf("%14s", "-") }
{ c[$1, $2] = $3; w[$1, $2] = $4 }
END {
    n = split(sides, s, " ")
    nt = split(threads, ts, " ")
    for (j = 1; j <= nt; j++) {
        t = ts[j]
        printf "\n%d thread%s: images/s by CPU time (by wall time); ratio of CPU-time throughputs\n", t, (t > 1 ? "s" : "")
        printf "%-14s %10s %10s %14s %14s %14s\n", "", "cpu", "wall", "/torch f32", "/torch f64", "/pyro"
        for (i = 1; i <= n; i++)
            printf "%-14s %10.0f %10.0f %s %s %s\n", s[i], c[t, s[i]], w[t, s[i]],
                   ratio(c[t, s[i]], c[t, "torch_float32"]), ratio(c[t, s[i]], c[t, "torch_float64"]),
                   ratio(c[t, s[i]], c[t, "pyro_float32"])
    }
}' "$tmp/med"
echo
echo "raw (threads side cpu wall):"
cat "$tmp/res"
