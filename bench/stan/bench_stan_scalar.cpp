// bench_stan_scalar.cpp - Stan Math's reverse mode on the computation of
// bench/bench_ops.c section 2 (y = x; 50 times { y = y * x + x }; 100
// scalar ops), forward + grad() + recover_memory(), per scalar op.
// Uses only the autodiff core (stan/math/rev/core.hpp) of the Debian
// package r-cran-stanheaders; see bench/stan/run.sh for the build line.
// Times are CPU time of the thread, medians of 7 runs, as bench_ops.
#include <stan/math/rev/core.hpp>
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

static double now() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main() {
    using stan::math::var;
    const int N2 = 20000, OPS = 100, REPS = 7;
    std::vector<double> t(REPS);
    double g = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        for (int i = 0; i < N2; i++) {
            var x = 0.3;
            var y = x;
            for (int k = 0; k < OPS / 2; k++) {
                var z = y * x;
                y = z + x;
            }
            y.grad();
            g = x.adj();
            stan::math::recover_memory();
        }
        t[r] = (now() - t0) / ((double)N2 * OPS) * 1e9;
    }
    std::sort(t.begin(), t.end());
    std::printf("Stan Math scalar reverse mode (forward + grad + recover_memory): %.1f ns per op (median of %d; dy/dx %g)\n",
                t[REPS / 2], REPS, g);
    return 0;
}
