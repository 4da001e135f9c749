"""The statistics of experiment results: intervals for differences, and the SRM check.

Plain Python (``math`` only; scipy is not a dependency), exact to well beyond the digits
an operator reads:

- **Thumbs-up rate difference** (variant minus control): Newcombe's hybrid score interval
  (Newcombe 1998, method 10), built from each arm's Wilson score interval. Unlike the
  plain normal (Wald) interval it keeps close to 95% coverage for rates near 0 or 1 and
  for modest samples.
- **Cost and latency per query** (difference of means): Welch's t interval, unequal
  variances, with the Welch-Satterthwaite degrees of freedom.
- **Sample-ratio mismatch**: Pearson's chi-square goodness of fit of the observed
  sessions per arm against the configured weights (df = arms - 1). A p-value below
  ``SRM_P_VALUE`` means assignment or exposure is broken and no difference can be
  trusted, whatever its interval says.

Below the stated minimums (``MIN_RATED_PER_ARM`` ratings for the rate,
``MIN_QUERIES_PER_ARM`` values for cost and latency, in each of the two arms compared)
no interval is given: the answer is "not enough data".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054
# Below these, an interval's coverage is not what it says (and an early look invites
# reading noise): the results say "not enough data" instead.
MIN_RATED_PER_ARM = 30
MIN_QUERIES_PER_ARM = 30
# Deliberately strict: the check runs on every look, and a false alarm discredits it.
SRM_P_VALUE = 0.001

_EPSILON = 1e-15
_MAX_ITERATIONS = 500


@dataclass(frozen=True)
class Interval:
    """A difference (variant minus control) with its 95% confidence interval."""

    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class SampleRatio:
    """The observed split of sessions against the weights."""

    chi_square: float
    degrees_of_freedom: int
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_P_VALUE


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (n > 0)."""
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_difference(
    *, successes: int, n: int, control_successes: int, control_n: int, z: float = Z_95
) -> Interval | None:
    """``successes/n - control_successes/control_n`` with Newcombe's hybrid score interval.

    None below ``MIN_RATED_PER_ARM`` in either arm.
    """
    if n < MIN_RATED_PER_ARM or control_n < MIN_RATED_PER_ARM:
        return None
    p1, p2 = successes / n, control_successes / control_n
    low1, high1 = wilson_interval(successes, n, z=z)
    low2, high2 = wilson_interval(control_successes, control_n, z=z)
    difference = p1 - p2
    return Interval(
        difference=difference,
        low=difference - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
        high=difference + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2),
    )


def _mean_variance(values: Sequence[float]) -> tuple[float, float]:
    mean = math.fsum(values) / len(values)
    variance = math.fsum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, variance


def welch_difference(
    values: Sequence[float], control: Sequence[float], *, confidence: float = 0.95
) -> Interval | None:
    """``mean(values) - mean(control)`` with Welch's t interval.

    None below ``MIN_QUERIES_PER_ARM`` values in either arm.
    """
    if len(values) < MIN_QUERIES_PER_ARM or len(control) < MIN_QUERIES_PER_ARM:
        return None
    mean1, var1 = _mean_variance(values)
    mean2, var2 = _mean_variance(control)
    difference = mean1 - mean2
    a, b = var1 / len(values), var2 / len(control)
    standard_error = math.sqrt(a + b)
    if standard_error == 0:
        return Interval(difference=difference, low=difference, high=difference)
    df = (a + b) ** 2 / (a * a / (len(values) - 1) + b * b / (len(control) - 1))
    half = t_quantile(0.5 + confidence / 2, df) * standard_error
    return Interval(difference=difference, low=difference - half, high=difference + half)


def sample_ratio(*, observed: Sequence[int], weights: Sequence[float]) -> SampleRatio | None:
    """Pearson's chi-square of ``observed`` counts against the ``weights``' shares.

    None with fewer than two arms of positive weight or no sessions at all.
    """
    pairs = [(o, w) for o, w in zip(observed, weights, strict=True) if w > 0]
    total = sum(o for o, _ in pairs)
    weight_sum = math.fsum(w for _, w in pairs)
    if len(pairs) < 2 or total == 0:
        return None
    chi_square = math.fsum(
        (o - total * w / weight_sum) ** 2 / (total * w / weight_sum) for o, w in pairs
    )
    df = len(pairs) - 1
    return SampleRatio(
        chi_square=chi_square, degrees_of_freedom=df, p_value=chi_square_sf(chi_square, df)
    )


# ----- distributions -----


def chi_square_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-square with ``df`` degrees of freedom: Q(df/2, x/2)."""
    if x <= 0:
        return 1.0
    return _gamma_q(df / 2, x / 2)


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma Q(a, x) (Numerical Recipes' gser/gcf)."""
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        # Series for P(a, x).
        term = total = 1 / a
        denominator = a
        for _ in range(_MAX_ITERATIONS):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPSILON:
                break
        return max(0.0, 1 - total * math.exp(log_prefix))
    # Lentz's continued fraction for Q(a, x).
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < _EPSILON:
            break
    return min(1.0, math.exp(log_prefix) * h)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta (Numerical Recipes' betacf)."""
    tiny = 1e-300
    c = 1.0
    d = 1 - (a + b) * x / (a + 1)
    d = 1 / (tiny if abs(d) < tiny else d)
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        numerator = m * (b - m) * x / ((a + m2 - 1) * (a + m2))
        d = 1 + numerator * d
        d = 1 / (tiny if abs(d) < tiny else d)
        c = 1 + numerator / c
        c = tiny if abs(c) < tiny else c
        h *= d * c
        numerator = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
        d = 1 + numerator * d
        d = 1 / (tiny if abs(d) < tiny else d)
        c = 1 + numerator / c
        c = tiny if abs(c) < tiny else c
        step = d * c
        h *= step
        if abs(step - 1) < _EPSILON:
            break
    return h


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (possibly fractional) degrees of freedom."""
    tail = 0.5 * regularized_beta(df / (df + t * t), df / 2, 0.5)
    return 1 - tail if t > 0 else tail


def t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile (above 0.5) of Student's t, by bisection of ``t_cdf``."""
    low, high = 0.0, 1.0
    while t_cdf(high, df) < probability:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return (low + high) / 2
