/* special.c - special functions for densities and their gradients, written
 * here so the library stays permissively licensed (no GSL).
 *
 * Methods: digamma/trigamma by recurrence up to x >= 10 then asymptotic
 * series (reflection for negative arguments); regularized incomplete gamma
 * by its power series (x < a + 1) or Lentz's continued fraction; regularized
 * incomplete beta by the continued fraction with the symmetry
 * I_x(a,b) = 1 - I_{1-x}(b,a); ndtri by Wichura's AS241 (full double
 * precision); erfinv through ndtri. */
#include <float.h>
#include <math.h>
#include "special.h"

static const double PI = 3.14159265358979323846;

double bk_digamma(double x) {
    if (isnan(x) || x == -INFINITY) return NAN;
    if (x == INFINITY) return INFINITY;
    if (x <= 0 && x == floor(x)) return NAN; /* poles */
    double r = 0;
    if (x < 0) {
        /* reflection: psi(1 - x) - psi(x) = pi cot(pi x) */
        r = -PI / tan(PI * x);
        x = 1 - x;
    }
    while (x < 10) {
        r -= 1 / x;
        x += 1;
    }
    double f = 1 / (x * x);
    double t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 + f * (691.0 / 32760 + f * (-1.0 / 12)))))));
    return r + log(x) - 0.5 / x + t;
}

double bk_trigamma(double x) {
    if (isnan(x) || x == -INFINITY) return NAN;
    if (x == INFINITY) return 0;
    if (x <= 0 && x == floor(x)) return INFINITY;
    if (x < 0) {
        /* psi1(1 - x) + psi1(x) = pi^2 / sin^2(pi x) */
        double s = sin(PI * x);
        return -bk_trigamma(1 - x) + PI * PI / (s * s);
    }
    double r = 0;
    while (x < 10) {
        r += 1 / (x * x);
        x += 1;
    }
    double f = 1 / (x * x);
    /* 1/x + 1/(2x^2) + sum B_2k / x^(2k+1) */
    double t = 1 / x + f / 2 + (1 / x) * f * (1.0 / 6 + f * (-1.0 / 30 + f * (1.0 / 42 + f * (-1.0 / 30 + f * (5.0 / 66 + f * (-691.0 / 2730 + f * 7.0 / 6))))));
    return r + t;
}

double bk_lbeta(double a, double b) {
    if (a <= 0 || b <= 0) return NAN;
    return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/* P(a, x) by its series; valid and fast for x < a + 1. */
static double gammainc_series(double a, double x) {
    double sum = 1 / a, term = sum;
    for (int n = 1; n < 100000; n++) {
        term *= x / (a + n);
        sum += term;
        if (fabs(term) < fabs(sum) * 1e-17) break;
    }
    return sum * exp(-x + a * log(x) - lgamma(a));
}

/* Q(a, x) by the continued fraction (Lentz); for x >= a + 1. */
static double gammainc_cf(double a, double x) {
    double b = x + 1 - a, c = 1 / DBL_MIN, d = 1 / b, h = d;
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < DBL_MIN) d = DBL_MIN;
        c = b + an / c;
        if (fabs(c) < DBL_MIN) c = DBL_MIN;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16) break;
    }
    return exp(-x + a * log(x) - lgamma(a)) * h;
}

double bk_gammainc_lower(double a, double x) {
    if (isnan(a) || isnan(x) || a <= 0 || x < 0) return NAN;
    if (x == 0) return 0;
    if (isinf(x)) return 1;
    return x < a + 1 ? gammainc_series(a, x) : 1 - gammainc_cf(a, x);
}

double bk_gammainc_upper(double a, double x) {
    if (isnan(a) || isnan(x) || a <= 0 || x < 0) return NAN;
    if (x == 0) return 1;
    if (isinf(x)) return 0;
    return x < a + 1 ? 1 - gammainc_series(a, x) : gammainc_cf(a, x);
}

double bk_gammainc_lower_da(double a, double x) {
    /* d/da P(a, x) by a central difference with a step scaled to a; the
     * series and continued fraction are smooth in a, so this is accurate
     * to about 1e-8 relative, enough for a reparameterization gradient. */
    if (!(a > 0) || !(x > 0)) return 0;
    double h = 1e-5 * fmax(a, 1e-3);
    if (a - h <= 0) h = a / 2;
    return (bk_gammainc_lower(a + h, x) - bk_gammainc_lower(a - h, x)) / (2 * h);
}

/* Continued fraction of the incomplete beta (Lentz). */
static double betacf(double a, double b, double x) {
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < DBL_MIN) d = DBL_MIN;
    d = 1 / d;
    double h = d;
    for (int m = 1; m < 100000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < DBL_MIN) d = DBL_MIN;
        c = 1 + aa / c;
        if (fabs(c) < DBL_MIN) c = DBL_MIN;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < DBL_MIN) d = DBL_MIN;
        c = 1 + aa / c;
        if (fabs(c) < DBL_MIN) c = DBL_MIN;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16) break;
    }
    return h;
}

double bk_betainc(double a, double b, double x) {
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0 || b <= 0 || x < 0 || x > 1) return NAN;
    if (x == 0) return 0;
    if (x == 1) return 1;
    double lf = a * log(x) + b * log1p(-x) - bk_lbeta(a, b);
    if (x < (a + 1) / (a + b + 2)) return exp(lf) * betacf(a, b, x) / a;
    return 1 - exp(lf) * betacf(b, a, 1 - x) / b;
}

/* Wichura, Algorithm AS241 (PPND16): the normal quantile to ~1e-16. */
double bk_ndtri(double p) {
    if (isnan(p) || p < 0 || p > 1) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    double q = p - 0.5, r, v;
    if (fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        return q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r +
                        45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r +
                     133.14166789178437745) * r + 3.387132872796366608) /
               (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r +
                    21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r +
                 42.313330701600911252) * r + 1.0);
    }
    r = q < 0 ? p : 1 - p;
    r = sqrt(-log(r));
    if (r <= 5) {
        r -= 1.6;
        v = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r +
                 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r +
              4.6303378461565452959) * r + 1.42343711074968357734) /
            (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r +
                 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r +
              2.05319162663775882187) * r + 1.0);
    } else {
        r -= 5;
        v = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r +
                 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r +
              5.4637849111641143699) * r + 6.6579046435011037772) /
            (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r +
                 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r +
              0.59983220655588793769) * r + 1.0);
    }
    return q < 0 ? -v : v;
}

double bk_erfinv(double x) {
    if (isnan(x) || x < -1 || x > 1) return NAN;
    if (x == 1) return INFINITY;
    if (x == -1) return -INFINITY;
    /* erf(y) = x  <=>  y = ndtri((x + 1) / 2) / sqrt(2); refine by Newton
     * to recover the precision lost in (x + 1) / 2 for tiny x */
    double y = bk_ndtri(0.5 * (x + 1)) / sqrt(2.0);
    for (int i = 0; i < 2; i++) {
        double err = erf(y) - x;
        y -= err / (2 / sqrt(PI) * exp(-y * y));
    }
    return y;
}

double bk_log1mexp(double x) {
    if (x > 0) return NAN;
    /* Maechler (2012): the split at -ln 2 keeps full precision */
    return x > -0.6931471805599453 ? log(-expm1(x)) : log1p(-exp(x));
}

double bk_logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    double m = fmax(a, b);
    return m + log1p(exp(-fabs(a - b)));
}

double bk_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

double bk_log_sigmoid(double x) { return -bk_softplus(-x); }

double bk_sigmoid(double x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}
