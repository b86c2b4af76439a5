#!/bin/sh
# bench/hmm_stan.sh - issue 7's acceptance: the two-state Gaussian HMM of
# examples/hmm_regimes.ppl (Dirichlet transition rows, ordered means, shared sd;
# the 200 observations simulated there, seed 11) under ppl's NUTS and under Stan
# (bench/hmm_stan.stan, forward algorithm), 4 chains x (1000 warmup + 1000 draws)
# each side, one thread, chains in turn. Posterior means must agree within the
# combined MCSE (|z| < 4); prints times per leapfrog and bulk ESS/s too.
# usage: sh bench/hmm_stan.sh   (repository root, after building build/; needs rstan)
set -eu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
D=/tmp/stanbench   # bench/hmm_regimes_data.ppl writes its JSON files here
mkdir -p "$D"
PPL=${PPL:-build/ppl}
"$PPL" run bench/hmm_regimes_data.ppl     # writes $D/hmm_y.json, $D/hmm_stan.json
Rscript bench/stan_compile.R bench/hmm_stan.stan "$D/hmm.rds"
sh bench/stan_ppl_side.sh bench/hmm_regimes_model.ppl regimes "$D/hmm_y.json" "$D/hmm_ppl"
Rscript bench/hmm_stan.R "$D/hmm.rds" "$D/hmm_stan.json" "$D/hmm_ppl" "$D/hmm_ppl.times" \
    "$D/hmm_ppl.summary.json" "$D/hmm_result.txt" p0 p1 mu sigma
# the same comparison against the model written for speed (bench/hmm_stan_fast.stan)
Rscript bench/stan_compile.R bench/hmm_stan_fast.stan "$D/hmm_fast.rds"
Rscript bench/hmm_stan.R "$D/hmm_fast.rds" "$D/hmm_stan.json" "$D/hmm_ppl" "$D/hmm_ppl.times" \
    "$D/hmm_ppl.summary.json" "$D/hmm_fast_result.txt" p0 p1 mu sigma
