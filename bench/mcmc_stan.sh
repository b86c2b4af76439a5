#!/bin/sh
# bench/mcmc_stan.sh - eight schools, non-centered (examples/eight_schools.ppl and
# .json; bench/eight_schools.stan) under ppl's NUTS and rstan: 4 chains x (1000
# warmup + 1000 draws), one thread, chains in turn; time per leapfrog (= gradient),
# minimum bulk ESS/s, time to first draw (Stan's compile time apart), and the
# posterior means compared within MCSE.
# usage: sh bench/mcmc_stan.sh   (repository root, after building build/; needs rstan)
set -eu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
D=${STANBENCH:-/tmp/stanbench}
mkdir -p "$D"
Rscript bench/stan_compile.R bench/eight_schools.stan "$D/es.rds"
sh bench/stan_ppl_side.sh examples/eight_schools.ppl schools examples/eight_schools.json "$D/es_ppl"
Rscript bench/stan_compare.R "$D/es.rds" examples/eight_schools.json "$D/es_ppl" "$D/es_ppl.times" \
    "$D/es_ppl.summary.json" "$D/es_result.txt" mu tau theta_raw theta
