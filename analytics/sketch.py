"""A mergeable latency sketch: percentiles within 1% of the true value, in fixed space.

Values fall into logarithmic buckets (a DDSketch): bucket ``i`` holds values in
(gamma^(i-1), gamma^i], with gamma = (1 + a) / (1 - a) for relative accuracy a = 1%, and
reports 2 * gamma^i / (gamma + 1), which is within 1% of every value in the bucket.
Latencies from 1 ms to 10 minutes need at most ~670 buckets, whatever the number of
queries, and two days' sketches merge by adding counts. The exact minimum and maximum
are kept too and bound every estimate, so a day with one query reports it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LOG_GAMMA = math.log(GAMMA)
# Values at or below this (ms) share one bucket: sub-microsecond latencies are noise.
SMALLEST = 1e-3


@dataclass
class LatencySketch:
    buckets: dict[int, int] = field(default_factory=dict)
    count: int = 0
    minimum: float | None = None
    maximum: float | None = None

    def add(self, value: float) -> None:
        index = math.ceil(math.log(max(value, SMALLEST)) / LOG_GAMMA)
        self.buckets[index] = self.buckets.get(index, 0) + 1
        self.count += 1
        self.minimum = value if self.minimum is None else min(self.minimum, value)
        self.maximum = value if self.maximum is None else max(self.maximum, value)

    def merge(self, other: LatencySketch) -> None:
        for index, n in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + n
        self.count += other.count
        for bound in (other.minimum, other.maximum):
            if bound is not None:
                self.minimum = bound if self.minimum is None else min(self.minimum, bound)
                self.maximum = bound if self.maximum is None else max(self.maximum, bound)

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile, within RELATIVE_ACCURACY of the exact one."""
        if not self.count:
            return None
        rank = max(math.ceil(fraction * self.count), 1)
        seen = 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                estimate = 2 * GAMMA**index / (GAMMA + 1)
                return min(max(estimate, self.minimum), self.maximum)
        return self.maximum

    def as_document(self) -> dict[str, Any]:
        # BSON keys are strings.
        return {
            "buckets": {str(index): n for index, n in self.buckets.items()},
            "count": self.count,
            "min": self.minimum,
            "max": self.maximum,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> LatencySketch:
        document = document or {}
        return cls(
            buckets={int(index): n for index, n in (document.get("buckets") or {}).items()},
            count=document.get("count", 0),
            minimum=document.get("min"),
            maximum=document.get("max"),
        )
