"""Fits the coefficients of the vector erf in kernels/elementwise.cl (erf_abs) and checks the
result, in float arithmetic with one rounding per fused multiply-add as the kernel computes it,
against scipy's double erf over a dense sweep. Run: python3 tools/fit_erf.py

The two pieces, for a = |x|:
  a < 1:  erf(a) = a + a * Q(a^2)               Q of degree 6 (erf(a) / a - 1, so the last
                                                 step adds a small term to a: under 1.2 ulp);
  a >= 1: erfc(a) = exp(P(1 / a) - a^2) / a     P of degree 10 over a in [1, 10.5] (past that
                                                 erfc(a) is below the smallest float);
          erf(a) = 1 - erfc(a).
Each polynomial minimises the largest absolute error (Lawson's iteratively reweighted least
squares over Chebyshev-spaced points)."""
import numpy as np
from scipy.special import erf, erfc

F32, F64 = np.float32, np.float64


def lawson(basis, f, iters=200):
    """Coefficients c minimising max |basis @ c - f| (Lawson's algorithm)."""
    u = np.full(len(f), 1.0 / len(f))
    for _ in range(iters):
        w = np.sqrt(u)
        c, *_ = np.linalg.lstsq(basis * w[:, None], f * w, rcond=None)
        u *= np.abs(basis @ c - f)
        u /= u.sum()
    return c


def horner(coeffs, v):
    """The polynomial at v in float, each step one fma (rounded once)."""
    r = np.full_like(v, F32(coeffs[-1]))
    for k in coeffs[-2::-1]:
        r = (r.astype(F64) * v.astype(F64) + F64(F32(k))).astype(F32)
    return r


def fit():
    a = np.cos(np.linspace(0, np.pi, 4000)) * 0.5 + 0.5
    a = a[a > 1e-4]
    q = lawson(np.vander(a * a, 7, increasing=True), erf(a) / a - 1)
    z = 1.0 / (np.cos(np.linspace(0, np.pi, 4000)) * 0.45 + 0.55)
    z = z[(z >= 1) & (z <= 10.5)]
    p = lawson(np.vander(1 / z, 11, increasing=True), np.log(erfc(z) * z) + z * z)
    return [F32(c) for c in q], [F32(c) for c in p]


def kernel_erf(x, q, p):
    """erf_abs as the kernel computes it, in float."""
    a = np.abs(x).astype(F32)
    s = (a * a).astype(F32)
    small = (a.astype(F64) * horner(q, s).astype(F64) + a.astype(F64)).astype(F32)
    t = (F32(1) / np.maximum(a, F32(1))).astype(F32)
    with np.errstate(over="ignore"):
        big = (np.exp((horner(p, t) - s).astype(F32)).astype(F32) * t).astype(F32)
    return np.copysign(np.where(a < 1, small, (F32(1) - big).astype(F32)), x)


def main():
    q, p = fit()
    x = np.linspace(0, 6, 3_000_001).astype(F32)
    want = erf(x.astype(F64))
    ulps = np.abs(kernel_erf(x, q, p) - want) / np.spacing(want.astype(F32)).astype(F64)
    print(f"largest error over [0, 6]: {ulps.max():.2f} ulp at {x[ulps.argmax()]:.7g}")
    print("Q:", ", ".join(f"{float(c):.9g}f" for c in q))
    print("P:", ", ".join(f"{float(c):.9g}f" for c in p))


if __name__ == "__main__":
    main()
