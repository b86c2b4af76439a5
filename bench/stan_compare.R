# bench/stan_compare.R - samples a cached Stan model (bench/stan_compile.R) with
# rstan, 4 chains x (1000 warmup + 1000 draws) run in turn on one thread, and
# compares it with ppl's draws of the same model (Stan CSV from `ppl sample --out`).
# usage: Rscript bench/stan_compare.R MODEL.rds STAN_DATA.json PPL_CSV_PREFIX \
#            PPL_TIMES PPL_SUMMARY.json OUT.txt PARAM...
#   PPL_TIMES: a file with "full_cpu full_wall warm_cpu warm_wall first_cpu first_wall" (seconds)
#   (process CPU time of ppl sample with 1000 draws, with 1 draw, and of a
#   1-chain 0-warmup 1-draw run: time to first draw).
# Posterior means are compared as z = (mean_ppl - mean_stan) / sqrt(mcse_ppl^2 + mcse_stan^2),
# MCSE and bulk ESS from rstan::monitor on each side's draws (one estimator on both sides).
suppressPackageStartupMessages({ library(rstan); library(jsonlite) })
a <- commandArgs(trailingOnly = TRUE)
model <- readRDS(a[1]); sdata <- fromJSON(a[2]); prefix <- a[3]
pt <- scan(a[4], quiet = TRUE); psum <- fromJSON(a[5]); out <- a[6]; pars <- a[7:length(a)]
cpu <- function(p) p[["user.self"]] + p[["sys.self"]]
chains <- 4; W <- 1000; S <- 1000

# time to first draw on the Stan side (model already compiled): 1 chain, no warmup, 1 draw
t0 <- proc.time()
f1 <- suppressWarnings(sampling(model, data = sdata, chains = 1, warmup = 0, iter = 1, seed = 1,
                                refresh = 0))
first_stan <- cpu(proc.time() - t0)

t0 <- proc.time()
fit <- sampling(model, data = sdata, chains = chains, warmup = W, iter = W + S, seed = 1,
                cores = 1, refresh = 0)
tt <- proc.time() - t0
el <- get_elapsed_time(fit)                      # per-chain wall seconds (warmup, sample)
sp <- get_sampler_params(fit, inc_warmup = TRUE)
lf_warm <- sum(sapply(sp, function(m) sum(m[1:W, "n_leapfrog__"])))
lf_samp <- sum(sapply(sp, function(m) sum(m[(W + 1):(W + S), "n_leapfrog__"])))
div_stan <- sum(sapply(sp, function(m) sum(m[(W + 1):(W + S), "divergent__"])))
stan_cpu <- cpu(tt)
# the same run with 1 draw (same seed: the same warmup bits); the sampling phase costs the difference.
# And the 1000-draw run again keeping one draw per chain (thin = S): rstan's R-side handling of the
# draws (0.3-0.5 s for 4000 draws, more than eight schools' whole sampling phase) drops out.
# Each STAN_REPS times (default 5), alternating; medians.
reps <- as.integer(Sys.getenv("STAN_REPS", "5"))
tw <- tth <- ew <- numeric(reps)
for (r in 1:reps) {
  t0 <- proc.time()
  fw <- suppressWarnings(sampling(model, data = sdata, chains = chains, warmup = W, iter = W + 1,
                                  seed = 1, cores = 1, refresh = 0))
  tw[r] <- cpu(proc.time() - t0)
  if (r == 1) stopifnot(isTRUE(all.equal(get_sampler_params(fw, inc_warmup = TRUE)[[1]][1:W, ],
                                         sp[[1]][1:W, ])))
  t0 <- proc.time()
  ft <- suppressWarnings(sampling(model, data = sdata, chains = chains, warmup = W, iter = W + S,
                                  thin = S, seed = 1, cores = 1, refresh = 0))
  tth[r] <- cpu(proc.time() - t0)
  ew[r] <- sum(get_elapsed_time(ft)[, "sample"])
}
stan_warm_cpu <- median(tw); stan_thin_cpu <- median(tth)
stan_samp_wall <- sum(el[, "sample"]); stan_warm_wall <- sum(el[, "warmup"])
stan_samp_wall <- median(c(ew, stan_samp_wall))
stan_samp_cpu <- stan_thin_cpu - stan_warm_cpu       # the sampler's sampling phase, CPU
stan_samp_cpu_r <- stan_cpu - stan_warm_cpu          # the same with rstan's handling of 4000 draws
arr <- as.array(fit, pars = pars)                # iterations x chains x scalars
ms <- monitor(arr, warmup = 0, print = FALSE)

# ppl side: its Stan CSVs
rd <- function(i) read.csv(sprintf("%s_%d.csv", prefix, i), comment.char = "#", check.names = FALSE)
pc <- lapply(1:chains, rd)
names_stan <- dimnames(arr)[[3]]
to_ppl <- function(n) gsub("\\]", "", gsub("\\[", ".", gsub(",", ".", n)))
parr <- array(NA_real_, dim = c(S, chains, length(names_stan)),
              dimnames = list(NULL, NULL, names_stan))
for (k in seq_along(names_stan)) for (c in 1:chains) parr[, c, k] <- pc[[c]][[to_ppl(names_stan[k])]]
mp <- monitor(parr, warmup = 0, print = FALSE)
lf_ppl <- sum(sapply(pc, function(d) sum(d$n_leapfrog__)))
div_ppl <- sum(sapply(pc, function(d) sum(d$divergent__)))
ppl_samp_cpu <- pt[1] - pt[3]                    # 1000-draw run minus 1-draw run (same warmup bits)

L <- character(0); say <- function(...) { s <- sprintf(...); L <<- c(L, s); cat(s, "\n") }
say("%-10s %9s %8s %8s %9s %8s %8s %8s %8s %8s %7s", "param", "ppl mean", "sd", "mcse", "stan mean", "sd", "mcse",
    "z", "ess ppl", "ess stan", "ppl own")
zs <- numeric(0)
for (k in seq_along(names_stan)) {
  n <- names_stan[k]
  z <- (mp[n, "mean"] - ms[n, "mean"]) / sqrt(mp[n, "se_mean"]^2 + ms[n, "se_mean"]^2)
  zs <- c(zs, z)
  on <- if (grepl("\\[", n)) sub("\\[([0-9]+)\\]", "", n) else n
  if (grepl("\\[", n)) on <- sprintf("%s[%d]", on, as.integer(sub(".*\\[([0-9]+)\\]", "\\1", n)) - 1L)
  own <- psum$summary[[on]]$ess_bulk
  say("%-10s %9.4f %8.4f %8.4f %9.4f %8.4f %8.4f %8.2f %8.0f %8.0f %7s", n, mp[n, "mean"], mp[n, "sd"],
      mp[n, "se_mean"], ms[n, "mean"], ms[n, "sd"], ms[n, "se_mean"], z, mp[n, "Bulk_ESS"], ms[n, "Bulk_ESS"],
      if (is.null(own)) "-" else sprintf("%.0f", own))
}
say("max |z| = %.2f (%s)", max(abs(zs)), if (max(abs(zs)) < 4) "PASS: all |z| < 4" else "FAIL")
say("divergences: ppl %d, stan %d", div_ppl, div_stan)
say("leapfrog steps in sampling: ppl %d, stan %d; stan warmup %d", lf_ppl, lf_samp, lf_warm)
say("stan: process CPU in sampling() %.2f s (1000 draws kept), %.2f s (1000 draws, thin = 1000), %.2f s (1 draw, same warmup) -> sampling CPU %.3f s (with R handling of the draws %.3f s)",
    stan_cpu, stan_thin_cpu, stan_warm_cpu, stan_samp_cpu, stan_samp_cpu_r)
say("stan: medians of %d runs each; thin runs %s s, 1-draw runs %s s", reps,
    paste(sprintf("%.2f", tth), collapse = " "), paste(sprintf("%.2f", tw), collapse = " "))
say("stan: its own elapsed times (per-chain wall, summed): warmup %.3f s, sampling %.3f s (median of %d runs)",
    stan_warm_wall, stan_samp_wall, reps + 1)
say("ppl : process CPU %.2f s (1000 draws), %.2f s (1 draw, same warmup) -> sampling CPU %.2f s",
    pt[1], pt[3], ppl_samp_cpu)
tl_stan <- stan_samp_cpu / lf_samp; tl_ppl <- ppl_samp_cpu / lf_ppl
say("time per leapfrog (= per gradient; sampling CPU / sampling leapfrogs): ppl %.3f us, stan %.3f us, ppl/stan %.2f",
    1e6 * tl_ppl, 1e6 * tl_stan, tl_ppl / tl_stan)
say("stan per leapfrog with rstan's R handling of 4000 draws included: %.3f us", 1e6 * stan_samp_cpu_r / lf_samp)
say("stan per leapfrog from its own elapsed sampling time (wall): %.3f us; ppl/stan %.2f",
    1e6 * stan_samp_wall / lf_samp, tl_ppl / (stan_samp_wall / lf_samp))
e_ppl <- min(mp[, "Bulk_ESS"]); e_stan <- min(ms[, "Bulk_ESS"])
say("min bulk ESS: ppl %.0f, stan %.0f", e_ppl, e_stan)
say("min bulk ESS/s (sampling CPU): ppl %.0f, stan %.0f, ratio ppl/stan %.2f", e_ppl / ppl_samp_cpu,
    e_stan / stan_samp_cpu, (e_ppl / ppl_samp_cpu) / (e_stan / stan_samp_cpu))
say("min bulk ESS/s (stan: its own elapsed sampling wall): stan %.0f, ratio ppl/stan %.2f",
    e_stan / stan_samp_wall, (e_ppl / ppl_samp_cpu) / (e_stan / stan_samp_wall))
say("min bulk ESS/s (whole run CPU, warmup included; ppl whole process, stan sampling() call): ppl %.0f, stan %.0f, ratio %.2f",
    e_ppl / pt[1], e_stan / stan_cpu, (e_ppl / pt[1]) / (e_stan / stan_cpu))
say("time to first draw (CPU): ppl %.4f s (whole process, mean of 20); stan %.3f s in sampling() after compile", pt[5], first_stan)
ct <- paste0(a[1], ".time")
if (file.exists(ct)) { c2 <- scan(ct, quiet = TRUE); say("stan compile: %.1f s wall, %.1f s CPU", c2[1], c2[2]) }
writeLines(L, out)
