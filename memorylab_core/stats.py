"""Small statistics for deciding whether a val_bpb gain is real.

Pure functions over sequences of floats, standard library only:

    mean(values)                  arithmetic mean
    sample_sd(values)             sample standard deviation (n - 1 denominator)
    t_sf(t, df)                   P(T > t) for Student's t with real-valued df
    t_cdf(t, df)                  P(T <= t)
    t_isf(p, df)                  the t with t_sf(t, df) == p (critical values)
    welch_one_sided(a, b)         Welch's test of H1: mean(a) < mean(b)
    pooled_sd(groups)             pooled within-group sd and its degrees of freedom
    pooled_one_sided(a, b, sigma, dof)
                                  one-sided t test using a known pooled sd

The t distribution is computed from the regularised incomplete beta function,
evaluated by its continued fraction (modified Lentz); results agree with
reference implementations to about 1e-12 over the range that matters here.
"""

import math

__all__ = [
    "mean", "sample_sd", "t_sf", "t_cdf", "t_isf", "welch_one_sided",
    "pooled_sd", "pooled_one_sided",
]

_EPS = 1e-15          # relative convergence target of the continued fraction
_TINY = 1e-300        # stands in for an exact zero in Lentz's recurrences
_MAX_TERMS = 1000
_NORMAL_DF = 1e8      # above this many degrees of freedom, t is the normal


# --- descriptive helpers -----------------------------------------------------

def mean(values):
    """Return the arithmetic mean of a non-empty sequence of numbers.

    Identical values have exactly that value as their mean.

    >>> mean([0.5, 1.0, 3.0])
    1.5

    Raises ValueError for an empty sequence.
    """
    values = [float(x) for x in values]
    if not values:
        raise ValueError("mean requires at least one value")
    origin = values[0]
    return origin + math.fsum(x - origin for x in values) / len(values)


def _sum_sq_dev(values):
    """Sum of squared deviations from the mean, exactly 0 for identical values.

    Deviations are taken from the first value before centring, which keeps
    full precision for val_bpb-like data (large mean, tiny spread).
    """
    origin = values[0]
    shifted = [x - origin for x in values]
    centre = math.fsum(shifted) / len(shifted)
    return math.fsum((x - centre) ** 2 for x in shifted)


def sample_sd(values):
    """Return the sample standard deviation (n - 1 in the denominator).

    >>> round(sample_sd([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 6)
    2.13809

    Raises ValueError for fewer than two values.
    """
    values = [float(x) for x in values]
    if len(values) < 2:
        raise ValueError("sample_sd requires at least two values")
    return math.sqrt(_sum_sq_dev(values) / (len(values) - 1))


# --- Student's t distribution -----------------------------------------------

def _betacf(a, b, x):
    """Continued fraction of I_x(a, b), up to the prefactor.

    Evaluates 1 / (1 + d1 / (1 + d2 / (1 + ...))) with
    d(2m+1) = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)) and
    d(2m)   = m(b-m)x / ((a+2m-1)(a+2m)), by the modified Lentz method.
    """
    # Leading level: f = 1 / (1 + d1 * ...); start Lentz at that first term.
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    f = d
    for m in range(1, _MAX_TERMS):
        two_m = 2 * m
        for coeff in (
            m * (b - m) * x / ((a + two_m - 1.0) * (a + two_m)),
            -(a + m) * (a + b + m) * x / ((a + two_m) * (a + two_m + 1.0)),
        ):
            d = 1.0 + coeff * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + coeff / c
            if abs(c) < _TINY:
                c = _TINY
            step = c * d
            f *= step
        if abs(step - 1.0) < _EPS:
            return f
    return f  # not reached for the a, b, x used by t_sf


def _log_gamma_ratio(a, b):
    """log(Gamma(a + b) / Gamma(a)) without the cancellation of two lgammas.

    For large a the two lgamma values are huge and nearly equal; Stirling's
    series for the difference keeps full precision there.
    """
    if a < 20.0:
        return math.lgamma(a + b) - math.lgamma(a)
    def corr(z):  # Stirling series of log Gamma after the leading terms
        z2 = z * z
        return (1.0 / 12.0 - (1.0 / 360.0 - 1.0 / (1260.0 * z2)) / z2) / z
    return ((a - 0.5) * math.log1p(b / a) + b * math.log(a + b) - b
            + corr(a + b) - corr(a))


def _reg_inc_beta(a, b, x, y, log_x, log_y):
    """Regularised incomplete beta I_x(a, b) for a, b > 0, 0 <= x <= 1.

    y = 1 - x and the logs are passed in so that the caller can compute them
    without the cancellation that 1.0 - x and log(x) suffer near x = 1.
    """
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    big, small = (a, b) if a >= b else (b, a)
    log_front = (_log_gamma_ratio(big, small) - math.lgamma(small)
                 + a * log_x + b * log_y)
    front = math.exp(log_front)
    # The fraction converges fast only below the mode; use the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a) above it.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, y) / b


def t_sf(t, df):
    """Return P(T > t) for Student's t distribution with df degrees of freedom.

    df may be any positive real (Welch's test needs fractional df) or
    math.inf (the standard normal). t may be +-inf.

    >>> round(t_sf(1.812, 10), 3)
    0.05
    >>> t_sf(0.0, 3.7)
    0.5

    Raises ValueError when df is not positive or either argument is NaN.
    """
    t = float(t)
    df = float(df)
    if math.isnan(t) or math.isnan(df) or df <= 0.0:
        raise ValueError(f"t_sf needs a real t and df > 0, got t={t!r}, df={df!r}")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    if df > _NORMAL_DF:
        # t and the normal differ by O(1/df) here, far below our tolerance.
        return 0.5 * math.erfc(t / math.sqrt(2.0))
    # P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2); split evenly between the tails.
    t2 = t * t
    if t2 == 0.0:
        return 0.5
    tail = 0.5 * _reg_inc_beta(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2),
                               -math.log1p(t2 / df), -math.log1p(df / t2))
    return tail if t > 0 else 1.0 - tail


def t_cdf(t, df):
    """Return P(T <= t) for Student's t distribution (see t_sf)."""
    return t_sf(-float(t), df)


def t_isf(p, df):
    """Return the t with t_sf(t, df) == p: the upper-tail critical value.

    >>> round(t_isf(0.025, 5), 3)
    2.571

    Found by bisection to about 1e-12 relative; p must lie in (0, 1).
    """
    p = float(p)
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_isf needs 0 < p < 1, got {p!r}")
    if p == 0.5:
        return 0.0
    if p > 0.5:
        return -t_isf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > p:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:
            return math.inf
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# --- tests on two samples --------------------------------------------------

def _finite_sample(values):
    sample = [float(x) for x in values]
    if not all(math.isfinite(x) for x in sample):
        raise ValueError("samples must hold finite numbers")
    return sample


def welch_one_sided(a, b):
    """Welch's unequal-variance t test of H1: mean(a) < mean(b).

    Lower val_bpb is better, so pass the challenger's values as ``a`` and the
    champion's as ``b``: a small p says the challenger is really better.

    Returns a dict:
        t       (mean(a) - mean(b)) / se, negative when a looks better
        df      Welch-Satterthwaite degrees of freedom (a real number)
        p       one-sided p value P(T <= t)
        n_a, n_b, mean_a, mean_b, sd_a, sd_b
        diff    mean(a) - mean(b)
        se      standard error of diff
        reason  None, or why no test was possible

    When either sample has fewer than two values, or both samples have zero
    variance, the test is undefined: t, df and p are None and ``reason`` says
    why (the means, sds and diff are still filled in where they exist).
    Raises ValueError for values that are not finite numbers.
    """
    a = _finite_sample(a)
    b = _finite_sample(b)
    out = {
        "t": None, "df": None, "p": None,
        "n_a": len(a), "n_b": len(b),
        "mean_a": mean(a) if a else None, "mean_b": mean(b) if b else None,
        "sd_a": sample_sd(a) if len(a) >= 2 else None,
        "sd_b": sample_sd(b) if len(b) >= 2 else None,
        "diff": None, "se": None, "reason": None,
    }
    if a and b:
        out["diff"] = out["mean_a"] - out["mean_b"]
    if len(a) < 2 or len(b) < 2:
        out["reason"] = "each sample needs at least 2 values"
        return out
    va = out["sd_a"] ** 2 / len(a)
    vb = out["sd_b"] ** 2 / len(b)
    se2 = va + vb
    if se2 == 0.0:
        out["se"] = 0.0
        out["reason"] = "both samples have zero variance"
        return out
    se = math.sqrt(se2)
    t = out["diff"] / se
    wa, wb = va / se2, vb / se2  # shares of the variance; scale-free, no underflow
    df = 1.0 / (wa * wa / (len(a) - 1) + wb * wb / (len(b) - 1))
    out.update(t=t, df=df, p=t_cdf(t, df), se=se)
    return out


def pooled_sd(groups):
    """Pooled within-group standard deviation over groups of two or more.

    ``groups`` is an iterable of sequences of numbers (one per replicate
    group). Groups with fewer than two values carry no information about the
    spread and are skipped. Returns ``(sigma, dof)`` where
    sigma = sqrt(sum of squared deviations from each group's own mean / dof)
    and dof = sum(n_i - 1). With no group of two or more: ``(None, 0)``.

    >>> sigma, dof = pooled_sd([[1.0, 3.0], [10.0, 10.0, 13.0], [7.0]])
    >>> round(sigma, 6), dof
    (1.632993, 3)
    """
    ss = 0.0
    dof = 0
    for values in groups:
        values = [float(x) for x in values]
        if len(values) < 2:
            continue
        ss += _sum_sq_dev(values)
        dof += len(values) - 1
    if dof == 0:
        return None, 0
    return math.sqrt(ss / dof), dof


def pooled_one_sided(a, b, sigma, dof):
    """One-sided t test of H1: mean(a) < mean(b) with a known pooled sd.

    For when a sample is too small for Welch (a champion resting on one run):
    the spread comes from the pooled noise floor ``sigma`` estimated with
    ``dof`` degrees of freedom elsewhere. t = diff / (sigma * sqrt(1/n_a + 1/n_b)),
    referred to Student's t with ``dof`` (the normal when dof is math.inf).

    Returns {"t", "df", "p", "n_a", "n_b", "diff", "se", "reason"}; t, df and
    p are None (with a reason) when a sample is empty, sigma is not positive
    or dof < 1. Raises ValueError for values that are not finite numbers.
    """
    a = _finite_sample(a)
    b = _finite_sample(b)
    out = {"t": None, "df": None, "p": None, "n_a": len(a), "n_b": len(b),
           "diff": None, "se": None, "reason": None}
    if not a or not b:
        out["reason"] = "each sample needs at least 1 value"
        return out
    out["diff"] = mean(a) - mean(b)
    if sigma is None or not sigma > 0.0 or dof is None or not dof >= 1:
        out["reason"] = "needs a positive sigma with at least 1 degree of freedom"
        return out
    se = sigma * math.sqrt(1.0 / len(a) + 1.0 / len(b))
    t = out["diff"] / se
    out.update(t=t, df=dof, p=t_cdf(t, dof), se=se)
    return out
