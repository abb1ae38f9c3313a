/* Binomial and gamma tails in relative precision (see stats.h). Densities come from Loader's
 * saddle-point form, exp(-stirlerr - bd0) / sqrt(2 pi x), which never forms a factorial, so
 * nothing overflows and no large logarithms cancel; tails are the density times a sum of
 * ratios that starts at its largest term. */
#include "cleval/stats.h"

#include <float.h>
#include <math.h>

static const double LN_2PI = 1.837877066409345483560659472811; /* ln(2 pi) */
static const double LN_SQRT_2PI = 0.918938533204672741780329736406;
static const double LN_2 = 0.693147180559945309417232121458;
static const double TWO_PI = 6.283185307179586476925286766559;

/* stirlerr(n) = ln(n!) - ln(sqrt(2 pi n) (n / e)^n), the error of Stirling's formula, for
 * n > 0 (n! = Gamma(n + 1)). Small n: directly from lgamma (the terms are small, so little
 * cancels). Large n: the Stirling series 1/12n - 1/360n^3 + 1/1260n^5 - ..., as many terms as
 * double precision needs at that n. */
static double stirlerr(double n)
{
    static const double S0 = 1.0 / 12, S1 = 1.0 / 360, S2 = 1.0 / 1260, S3 = 1.0 / 1680,
                        S4 = 1.0 / 1188;
    if (n <= 15.0) return lgamma(n + 1.0) - (n + 0.5) * log(n) + n - LN_SQRT_2PI;
    double nn = n * n;
    if (n > 500) return (S0 - S1 / nn) / n;
    if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
    if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
    return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/* bd0(x, m) = x ln(x / m) + m - x, the deviance term, for x > 0 and m > 0. Near x = m the
 * closed form cancels to nothing, so it is summed as a series in v = (x - m) / (x + m):
 * bd0 = (x - m) v + 2x (v^3/3 + v^5/5 + ...). */
static double bd0(double x, double m)
{
    if (fabs(x - m) < 0.1 * (x + m)) {
        double v = (x - m) / (x + m);
        double s = (x - m) * v;
        double ej = 2 * x * v;
        double v2 = v * v;
        for (int j = 1; j < 1000; j++) {
            ej *= v2;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s) return s1;
            s = s1;
        }
        return s;
    }
    return x * log(x / m) + m - x;
}

/* ln of the Binomial(n, 1/2) probability of k, 0 <= k <= n. */
static double binom_half_log_pmf(double k, double n)
{
    if (k == 0 || k == n) return -n * LN_2;
    double lc = stirlerr(n) - stirlerr(k) - stirlerr(n - k) - bd0(k, n / 2) - bd0(n - k, n / 2);
    double lf = LN_2PI + log(k) + log1p(-k / n);
    return lc - 0.5 * lf;
}

/* ln P(X <= k) for 2k < n: the pmf at k times sum_{i <= k} pmf(i) / pmf(k), whose terms shrink
 * from 1 by the ratios pmf(i - 1) / pmf(i) = i / (n - i + 1) < 1. */
static double lower_tail_below_half(uint64_t k, uint64_t n)
{
    double sum = 1.0, carry = 0.0, term = 1.0;
    for (uint64_t i = k; i >= 1; i--) {
        term *= (double)i / (double)(n - i + 1);
        cleval_stats_add_compensated(&sum, &carry, term);
        if (term < sum * (DBL_EPSILON / 16)) break;
    }
    return binom_half_log_pmf((double)k, (double)n) + log(sum + carry);
}

double cleval_stats_binom_half_log_cdf(uint64_t k, uint64_t n)
{
    if (k >= n) return 0.0;
    if (2 * k < n) return lower_tail_below_half(k, n);
    /* By symmetry P(X <= k) = 1 - P(X <= n - k - 1), and 2 (n - k - 1) < n. */
    return log1p(-exp(lower_tail_below_half(n - k - 1, n)));
}

double cleval_stats_mcnemar_exact(uint64_t b, uint64_t c, double *log_p)
{
    double lp = 0.0;
    if (b + c > 0) {
        uint64_t k = b < c ? b : c;
        lp = LN_2 + cleval_stats_binom_half_log_cdf(k, b + c);
        if (lp > 0) lp = 0; /* min(1, 2 P): b == c gives 2 P > 1 */
    }
    if (log_p) *log_p = lp;
    return exp(lp);
}

/* x^a e^-x / Gamma(a + 1), the Poisson density at a (continuous), in Loader's form. */
static double poisson_density(double a, double x)
{
    return exp(-stirlerr(a) - bd0(a, x)) / sqrt(TWO_PI * a);
}

/* P(a, x) by its power series: x^a e^-x / Gamma(a + 1) * sum_n x^n / ((a + 1) ... (a + n)).
 * Used for x < a + 1, where the terms fall at least geometrically after the first few. */
static double gamma_p_series(double a, double x)
{
    double sum = 1.0, carry = 0.0, term = 1.0;
    for (int n = 1; n < 100000; n++) {
        term *= x / (a + n);
        cleval_stats_add_compensated(&sum, &carry, term);
        if (term < (sum + carry) * (DBL_EPSILON / 4)) break;
    }
    return poisson_density(a, x) * (sum + carry);
}

/* Q(a, x) by the continued fraction Gamma(a, x) = x^a e^-x (1 / (x + 1 - a - 1 (1 - a) /
 * (x + 3 - a - 2 (2 - a) / (x + 5 - a - ...)))), evaluated forward with the modified Lentz
 * method. Used for x >= a + 1, where it converges in a few dozen steps. */
static double gamma_q_fraction(double a, double x)
{
    const double tiny = DBL_MIN / DBL_EPSILON;
    double b = x + 1 - a;
    double c = 1 / tiny, d = 1 / b, h = d;
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < tiny) d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1) < DBL_EPSILON) break;
    }
    /* x^a e^-x / Gamma(a) = a * x^a e^-x / Gamma(a + 1). */
    return a * poisson_density(a, x) * h;
}

double cleval_stats_gamma_q(double a, double x)
{
    if (isnan(a) || isnan(x) || a <= 0 || x < 0) return NAN;
    if (x == 0) return 1.0;
    if (isinf(x)) return 0.0;
    if (x < a + 1) {
        double p = gamma_p_series(a, x);
        return p >= 1 ? 0.0 : 1.0 - p;
    }
    return gamma_q_fraction(a, x);
}

double cleval_stats_chi2_sf(double x, double dof)
{
    if (isnan(x) || !(dof > 0)) return NAN;
    if (x <= 0) return 1.0;
    return cleval_stats_gamma_q(dof / 2, x / 2);
}
