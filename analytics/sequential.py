"""The stopping rule of experiments: an always-valid confidence sequence for the
difference in thumbs-up rate (variant minus control), so an operator may look at the
results at any time, as often as they like, and act on what they see.

Why not the fixed-horizon interval (``statistics.proportion_difference``)? Its 95% holds
for ONE look at a sample size chosen in advance. Looking after every batch and stopping
at the first interval that excludes 0 declares a winner between arms that are alike far
more often than 5% of the time (``tests/analytics/test_stopping_rule.py`` measures it).
A confidence sequence holds at every look at once: P(it ever excludes the true
difference) <= alpha, however many looks, whenever they are taken.

**The test: the normal-mixture sequential probability ratio test** (mSPRT; Robbins 1970,
Johari, Pekelis and Walsh 2017 "Always valid inference: bringing sequential analysis to
A/B testing", the test Optimizely ships; the same boundary is Howard, Ramdas, McAuliffe
and Sekhon 2021 "Time-uniform, nonparametric, nonasymptotic confidence sequences": the
normal-mixture boundary, with intrinsic time V). With ``d`` the observed difference p1 - p2 and

    V = p1 (1 - p1) / n1 + p2 (1 - p2) / n2        (its variance; n = rated queries)

the mixture likelihood ratio of "the difference is theta" against N(theta, tau^2)
alternatives is

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (d - theta)^2 / (2 V (V + tau^2)))

and the confidence sequence is every theta with Lambda < 1 / alpha:

    d +- sqrt( V (V + tau^2) / tau^2 * (2 log(1 / alpha) + log((V + tau^2) / V)) )

- **Mixing parameter** ``tau = MIXING_SD = 0.05``: the spread of the differences the
  test is tuned to find (a few points of thumbs-up rate). It is fixed before any data is
  seen; any tau keeps the guarantee, it only moves where the sequence is tightest
  against a fixed-horizon 95% interval: near V = tau^2 / 10, i.e. 1,000-2,000 ratings
  per arm at rates near 50%, where it is about 1.55 times as wide (3.5 times at 30
  ratings per arm, 1.7 times at 20,000).
- **alpha** = ``ALPHA`` (0.05) split evenly over the variants compared with control
  (Bonferroni): with k arms each comparison uses alpha / (k - 1).
- The rates in V are shrunk towards 1/2, (up + 1) / (n + 2), so an arm with every rating
  up (or down) still has a variance. The sequence is asymptotic (the normal
  approximation of each arm's rate), like the fixed-horizon intervals; below
  ``statistics.MIN_RATED_PER_ARM`` ratings in either arm it is not computed.

**Verdict** per variant: "better" when the whole sequence is above 0, "worse" when below,
else "no_difference_yet". **When to look again**: if the observed difference were the
true one, the sequence would exclude 0 once V shrinks to the V* where its half-width
equals |d|; at the current split that is ``n * V / V*`` ratings per arm
(``more_rated_per_arm`` is what is missing). The advice ``look_again_after_rated`` is that
estimate bounded to at most doubling the data (an estimate from a noisy difference is
rough), and at least ``MIN_RATED_PER_ARM``; with no observed difference at all it is
"double the data". Looking earlier costs nothing but time: the guarantee holds anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analytics.statistics import MIN_RATED_PER_ARM

ALPHA = 0.05
MIXING_SD = 0.05

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE_YET = "no_difference_yet"


@dataclass(frozen=True)
class StoppingDecision:
    """One variant against control under the sequential test."""

    verdict: str
    # Rated queries in the variant and in control at this look.
    rated: int
    control_rated: int
    alpha: float
    mixing_sd: float = MIXING_SD
    # The observed difference and its always-valid interval; None below the minimum.
    difference: float | None = None
    cs_low: float | None = None
    cs_high: float | None = None
    # Estimated further ratings per arm before a verdict if the observed difference is
    # the true one; None once decided or when nothing differs yet.
    more_rated_per_arm: int | None = None
    # Advice: look again after this many more ratings per arm (None once decided).
    look_again_after_rated: int | None = None

    @property
    def decided(self) -> bool:
        return self.verdict != NO_DIFFERENCE_YET


def _shrunk_variance(successes: int, n: int) -> float:
    """p (1 - p) / n with p = (successes + 1) / (n + 2)."""
    p = (successes + 1) / (n + 2)
    return p * (1 - p) / n


def half_width(variance: float, *, alpha: float = ALPHA, mixing_sd: float = MIXING_SD) -> float:
    """The half-width of the normal-mixture confidence sequence at variance ``V``."""
    tau2 = mixing_sd * mixing_sd
    return math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )


def _variance_for_half_width(target: float, *, alpha: float, mixing_sd: float) -> float:
    """The V at which ``half_width(V) == target`` (the half-width grows with V)."""
    low, high = 0.0, max(target * target, 1e-12)
    while half_width(high, alpha=alpha, mixing_sd=mixing_sd) < target:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if middle > 0 and half_width(middle, alpha=alpha, mixing_sd=mixing_sd) < target:
            low = middle
        else:
            high = middle
        if high - low <= high * 1e-9:
            break
    return low


def stopping_decision(
    *,
    successes: int,
    n: int,
    control_successes: int,
    control_n: int,
    comparisons: int = 1,
    alpha: float = ALPHA,
    mixing_sd: float = MIXING_SD,
) -> StoppingDecision:
    """The variant's verdict against control at this look (see the module docstring).

    ``comparisons``: how many variants are compared with control (alpha is split).
    """
    alpha = alpha / max(1, comparisons)
    fewer = min(n, control_n)
    if fewer < MIN_RATED_PER_ARM:
        wait = MIN_RATED_PER_ARM - fewer
        return StoppingDecision(
            verdict=NO_DIFFERENCE_YET,
            rated=n,
            control_rated=control_n,
            alpha=alpha,
            mixing_sd=mixing_sd,
            look_again_after_rated=wait,
        )
    difference = successes / n - control_successes / control_n
    variance = _shrunk_variance(successes, n) + _shrunk_variance(control_successes, control_n)
    half = half_width(variance, alpha=alpha, mixing_sd=mixing_sd)
    low, high = difference - half, difference + half
    decided = low > 0 or high < 0
    verdict = BETTER if low > 0 else WORSE if high < 0 else NO_DIFFERENCE_YET
    more = look_again = None
    if not decided:
        # Keep the current split: every arm's count grows by the same factor.
        grow_to = None
        if difference != 0:
            target = _variance_for_half_width(abs(difference), alpha=alpha, mixing_sd=mixing_sd)
            if target > 0:
                grow_to = variance / target
        per_arm = max(n, control_n)
        if grow_to is not None:
            more = max(1, math.ceil(per_arm * grow_to) - per_arm)
        look_again = min(more if more is not None else per_arm, per_arm)
        look_again = max(look_again, MIN_RATED_PER_ARM)
    return StoppingDecision(
        verdict=verdict,
        rated=n,
        control_rated=control_n,
        alpha=alpha,
        mixing_sd=mixing_sd,
        difference=round(difference, 6),
        cs_low=round(low, 6),
        cs_high=round(high, 6),
        more_rated_per_arm=more,
        look_again_after_rated=look_again,
    )
