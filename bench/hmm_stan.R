# bench/hmm_stan.R - the Stan side and the comparison of bench/hmm_stan.sh
# (the same arguments as bench/stan_compare.R, which does the work).
a <- commandArgs(trailingOnly = FALSE)
here <- dirname(sub("^--file=", "", a[grep("^--file=", a)]))
source(file.path(here, "stan_compare.R"))
