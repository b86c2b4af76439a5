# bench/peers/stan_run.R - the rstan side of bench/mcmc_peers.sh: samples a cached Stan
# model (bench/stan_compile.R) with 4 chains x (1000 warmup + 1000 draws) in turn on one
# thread (cores = 1), seed 1, diagonal metric, target acceptance 0.8, and writes
#   OUT.draws.csv  chain, draw and one column per scalar parameter (4000 rows)
#   OUT.times      key value lines (process CPU seconds from proc.time())
# The sampling phase costs the difference between the 1000-draw run kept with thin = 1000
# (the sampler does the same work; rstan's R-side handling of 4000 draws drops out) and
# the same seed's 1-draw run (the same warmup bits); medians of STAN_REPS (default 3).
# usage: Rscript bench/peers/stan_run.R MODEL.rds DATA.json OUT PARAM...
suppressPackageStartupMessages({ library(rstan); library(jsonlite) })
a <- commandArgs(trailingOnly = TRUE)
model <- readRDS(a[1]); sdata <- fromJSON(a[2]); out <- a[3]; pars <- a[4:length(a)]
cpu <- function(p) p[["user.self"]] + p[["sys.self"]]
chains <- 4; W <- 1000; S <- 1000
run <- function(iter, thin = 1, ch = chains, warm = W) {
  t0 <- proc.time()
  f <- suppressWarnings(sampling(model, data = sdata, chains = ch, warmup = warm, iter = iter,
                                 thin = thin, seed = 1, cores = 1, refresh = 0))
  list(fit = f, cpu = cpu(proc.time() - t0))
}
first <- run(1, ch = 1, warm = 0)$cpu                 # time to first draw after the compile
full <- run(W + S)
fit <- full$fit
sp <- get_sampler_params(fit, inc_warmup = TRUE)
lf_samp <- sum(sapply(sp, function(m) sum(m[(W + 1):(W + S), "n_leapfrog__"])))
lf_warm <- sum(sapply(sp, function(m) sum(m[1:W, "n_leapfrog__"])))
div <- sum(sapply(sp, function(m) sum(m[(W + 1):(W + S), "divergent__"])))
reps <- as.integer(Sys.getenv("STAN_REPS", "3"))
tw <- tth <- ew <- numeric(reps)
for (r in 1:reps) {                                   # alternating 1-draw and thinned runs
  w <- run(W + 1); tw[r] <- w$cpu
  if (r == 1) stopifnot(isTRUE(all.equal(get_sampler_params(w$fit, inc_warmup = TRUE)[[1]][1:W, ],
                                         sp[[1]][1:W, ])))
  th <- run(W + S, thin = S); tth[r] <- th$cpu
  ew[r] <- sum(get_elapsed_time(th$fit)[, "sample"])
}
# time per gradient: rstan's grad_log_prob at a fixed unconstrained point, K calls from R
# (R's call overhead, some microseconds, included: an upper bound on Stan's own gradient)
up <- rep(0.1, get_num_upars(fit)); K <- as.integer(Sys.getenv("STAN_GRADS", "2000"))
invisible(grad_log_prob(fit, up))
t0 <- proc.time(); for (i in 1:K) grad_log_prob(fit, up); grad <- cpu(proc.time() - t0) / K
arr <- as.array(fit, pars = pars)                     # iterations x chains x scalars
d <- data.frame(chain = rep(1:chains, each = S), draw = rep(1:S, chains))
for (k in dimnames(arr)[[3]]) d[[k]] <- as.vector(arr[, , k])
write.csv(d, paste0(out, ".draws.csv"), row.names = FALSE)
v <- c(first_cpu = first, full_cpu = full$cpu, warm_cpu = median(tw), thin_cpu = median(tth),
       samp_cpu = median(tth) - median(tw), samp_elapsed = median(ew), lf_samp = lf_samp,
       lf_warm = lf_warm, divergences = div, reps = reps, grad_s = grad)
ct <- paste0(a[1], ".time")
if (file.exists(ct)) { c2 <- scan(ct, quiet = TRUE); v <- c(v, compile_wall = c2[1], compile_cpu = c2[2]) }
writeLines(sprintf("%s %.6f", names(v), v), paste0(out, ".times"))
cat(sprintf("rstan %s: sampling CPU %.3f s (thin runs %s; 1-draw runs %s), %d sampling leapfrogs, %d divergences\n",
            out, v[["samp_cpu"]], paste(sprintf("%.2f", tth), collapse = " "),
            paste(sprintf("%.2f", tw), collapse = " "), lf_samp, div))
