# bench/stan_compile.R - compiles a Stan model once and caches it as RDS.
# usage: Rscript bench/stan_compile.R MODEL.stan OUT.rds   (prints compile seconds)
suppressPackageStartupMessages(library(rstan))
a <- commandArgs(trailingOnly = TRUE)
if (file.exists(a[2])) { cat("cached", a[2], "\n"); quit(status = 0) }
t0 <- proc.time()
m <- stan_model(a[1])
t1 <- proc.time() - t0
saveRDS(m, a[2])
cat(sprintf("compile %s: %.1f s wall, %.1f s CPU (self+children)\n", a[1], t1[["elapsed"]],
            t1[["user.self"]] + t1[["sys.self"]] + t1[["user.child"]] + t1[["sys.child"]]))
writeLines(sprintf("%.2f %.2f", t1[["elapsed"]], t1[["user.self"]] + t1[["sys.self"]] + t1[["user.child"]] + t1[["sys.child"]]), paste0(a[2], ".time"))
