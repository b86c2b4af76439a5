#!/bin/sh
# bench/hmm_cat_stan.sh - issue 7's "HMM inside NUTS" target: three states,
# 10 symbols, 600 steps, Dirichlet priors (bench/hmm_cat_model.ppl) under
# ppl's NUTS and under Stan (bench/hmm_cat_stan.stan: the log-space forward
# algorithm; bench/hmm_cat_stan_fast.stan: the scaled one), 4 chains x (1000
# warmup + 1000 draws) each side, one thread, chains in turn; the same data
# (bench/hmm_cat_data.ppl, seed 7).  Prints posterior agreement (|z| < 4),
# time per leapfrog (= per gradient) and min bulk ESS/s (bench/stan_compare.R).
# usage: sh bench/hmm_cat_stan.sh   (repository root, after building build/; needs rstan)
set -eu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
D=/tmp/stanbench   # bench/hmm_cat_data.ppl writes its JSON files here
mkdir -p "$D"
PPL=${PPL:-build/ppl}
"$PPL" run bench/hmm_cat_data.ppl     # writes $D/hmmcat_y.json, $D/hmmcat_stan.json
Rscript bench/stan_compile.R bench/hmm_cat_stan.stan "$D/hmmcat.rds"
Rscript bench/stan_compile.R bench/hmm_cat_stan_fast.stan "$D/hmmcat_fast.rds"
sh bench/stan_ppl_side.sh bench/hmm_cat_model.ppl hmmcat "$D/hmmcat_y.json" "$D/hmmcat_ppl"
Rscript bench/hmm_stan.R "$D/hmmcat.rds" "$D/hmmcat_stan.json" "$D/hmmcat_ppl" "$D/hmmcat_ppl.times" \
    "$D/hmmcat_ppl.summary.json" "$D/hmmcat_result.txt" init trans emit
Rscript bench/hmm_stan.R "$D/hmmcat_fast.rds" "$D/hmmcat_stan.json" "$D/hmmcat_ppl" "$D/hmmcat_ppl.times" \
    "$D/hmmcat_ppl.summary.json" "$D/hmmcat_fast_result.txt" init trans emit
