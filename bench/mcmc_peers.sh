#!/bin/sh
# bench/mcmc_peers.sh - NUTS side by side: ppl, rstan, NumPyro (and Pyro, gradient and a
# short run only) on three models with the same data:
#   eight   eight schools, non-centered (examples/eight_schools.ppl, bench/eight_schools.stan)
#   logreg  logistic regression, N = 10,000, D = 25, known coefficients (bench/peers/logreg.*)
#   mvn100  100-d Gaussian, AR(1) correlation 0.9 (bench/peers/mvn100.*)
# Data: bench/peers/data.ppl (fixed seeds) writes logreg.json and mvn100.json; every side
# reads those files. Settings on every side: 4 chains in turn x (1000 warmup + 1000 draws),
# diagonal metric, target acceptance 0.8, max tree depth 10, seed 1, one thread
# (--threads 1, cores = 1, OMP/OPENBLAS/MKL one thread, one XLA thread, torch one thread).
# Times are process CPU time. Per side:
#   ppl    bench/stan_ppl_side.sh (1000-draw run minus the 1-draw run = sampling phase,
#          medians of PPL_REPS = 3; time to first draw: whole process, mean of 20) and
#          bench/bench_potential.c (time per gradient, replayed and interpreted)
#   rstan  bench/peers/stan_run.R (compile apart, cached in $D; thin = 1000 run minus the
#          1-draw run, medians of STAN_REPS = 3); for logreg also bench/peers/logreg_glm.stan
#          (bernoulli_logit_glm)
#   NumPyro/Pyro  bench/peers/mcmc_python.py (compile run apart, medians of REPS = 3 timed runs)
# Then bench/peers/compare.py: ArviZ bulk ESS and MCSE on every side's draws, the table,
# and max |z| of the posterior means against rstan's.
# usage: sh bench/mcmc_peers.sh   (repository root, after building build/)
#   MODELS="eight logreg mvn100"  SIDES="ppl stan numpyro pyro"  PEERS=/tmp/peersbench
set -eu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
root=$(pwd)
D=${PEERS:-/tmp/peersbench}
PY=${PY:-/opt/bench-venv/bin/python}
PPL=${PPL:-build/ppl}
MODELS=${MODELS:-"eight logreg mvn100"}
SIDES=${SIDES:-"ppl stan numpyro pyro"}
mkdir -p "$D"
[ -f "$D/logreg.json" ] || (cd "$D" && "$root/$PPL" run "$root/bench/peers/data.ppl")
cp examples/eight_schools.json "$D/eight.json"
gcc -O2 -std=gnu11 -Iinclude -Isrc/backend -Isrc/runtime -Isrc/infer -Istdlib \
    bench/bench_potential.c build/libppl.a -o "$D/bench_potential" -lopenblas -llapacke -lm -lpthread
has() { case " $SIDES " in *" $1 "*) return 0 ;; esac; return 1; }
for m in $MODELS; do
    case $m in
    eight) f=examples/eight_schools.ppl; name=schools; stan=bench/eight_schools.stan
           pars="mu tau theta_raw theta"; neval=20000 ;;
    logreg) f=bench/peers/logreg.ppl; name=logreg; stan=bench/peers/logreg.stan
            pars="alpha beta"; neval=2000 ;;
    mvn100) f=bench/peers/mvn100.ppl; name=mvn100; stan=bench/peers/mvn100.stan
            pars="x"; neval=5000 ;;
    esac
    data="$D/$m.json"
    if has ppl; then
        echo "== $m: ppl"
        NEVAL=$neval "$D/bench_potential" "$f" "$name" "$data" | tee "$D/$m.ppl.grad"
        PPL=$PPL sh bench/stan_ppl_side.sh "$f" "$name" "$data" "$D/$m.ppl" | tail -1
    fi
    if has stan; then
        echo "== $m: rstan"
        Rscript bench/stan_compile.R "$stan" "$D/$m.rds"
        # shellcheck disable=SC2086
        Rscript bench/peers/stan_run.R "$D/$m.rds" "$data" "$D/$m.stan" $pars
        if [ "$m" = logreg ]; then  # and Stan's fused GLM density, the fast way to write it
            Rscript bench/stan_compile.R bench/peers/logreg_glm.stan "$D/logreg_glm.rds"
            # shellcheck disable=SC2086
            Rscript bench/peers/stan_run.R "$D/logreg_glm.rds" "$data" "$D/$m.stanglm" $pars
        fi
    fi
    if has numpyro; then
        echo "== $m: NumPyro"
        "$PY" bench/peers/mcmc_python.py numpyro "$m" "$data" "$D/$m.numpyro"
    fi
    if has pyro; then
        echo "== $m: Pyro"
        "$PY" bench/peers/mcmc_python.py pyro "$m" "$data" "$D/$m.pyro"
    fi
    "$PY" bench/peers/compare.py "$D" "$m"
done
