/* Distribution tails for the verdicts of `compare` and `drift`: the Binomial(n, 1/2) lower tail
 * behind McNemar's exact test and the chi-squared upper tail (the regularized upper incomplete
 * gamma function). Pure functions without state; each keeps its relative accuracy far into the
 * tails, where naive sums of factorials overflow or cancel. */
#ifndef CLEVAL_STATS_H
#define CLEVAL_STATS_H

#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ln P(X <= k) for X ~ Binomial(n, 1/2); 0 when k >= n. The value stays finite where P itself
 * underflows (k = 0, n = 10^6 gives -693147.18...). Relative error about 1e-13 for n up to
 * 2^40. */
double cleval_stats_binom_half_log_cdf(uint64_t k, uint64_t n);

/* McNemar's exact two-sided p-value for the discordant counts b and c (docs/contract.md):
 * min(1, 2 P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2), and 1 when b + c = 0. When log_p
 * is not NULL it receives ln p, finite even when p underflows to 0. */
double cleval_stats_mcnemar_exact(uint64_t b, uint64_t c, double *log_p);

/* Q(a, x) = Gamma(a, x) / Gamma(a), the regularized upper incomplete gamma function, for a > 0
 * and x >= 0 (NaN outside). A power series for P = 1 - Q when x < a + 1, else a continued
 * fraction for Q; the common factor x^a e^-x / Gamma(a) comes from Loader's saddle-point
 * expansion, so it keeps full relative precision for large a and x. */
double cleval_stats_gamma_q(double a, double x);

/* P(X > x) for X ~ chi-squared with `dof` degrees of freedom (dof > 0): Q(dof / 2, x / 2). */
double cleval_stats_chi2_sf(double x, double dof);

/* Neumaier's compensated sum: adds `value` to (*sum, *carry); the total is *sum + *carry. Unlike
 * Kahan's, it stays exact when a term is larger than the running sum. */
static inline void cleval_stats_add_compensated(double *sum, double *carry, double value)
{
    double t = *sum + value;
    if (fabs(*sum) >= fabs(value))
        *carry += (*sum - t) + value;
    else
        *carry += (value - t) + *sum;
    *sum = t;
}

/* The two-sided 95% normal quantile, 1.959963984540054 (scipy.stats.norm.ppf(0.975)). */
#define CLEVAL_STATS_Z95 1.959963984540054

#ifdef __cplusplus
}
#endif

#endif
