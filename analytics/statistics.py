"""Statistics of the KPI reports: the metrics, their intervals and variant-vs-control tests.

Rates get a Wilson score interval, means a normal-approximation interval (sample standard
deviation). A variant is compared with the control by its relative lift with a 95 % interval
(delta method on the log ratio) and a two-sided z-test p-value (pooled standard error for two
proportions); :func:`compare` calls a difference "significant" only when p is below the
``alpha`` it is given (the report divides 0.05 by the number of comparisons: Bonferroni), and
otherwise estimates how many more units per variant would detect the observed difference with
80 % power.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MetricName = Literal[
    "ctr",
    "add_to_cart_rate",
    "conversion_rate",
    "revenue_per_user",
    "aov",
    "repurchase_rate",
    "retention",
]
METRICS: tuple[MetricName, ...] = (
    "ctr",
    "add_to_cart_rate",
    "conversion_rate",
    "revenue_per_user",
    "aov",
    "repurchase_rate",
    "retention",
)
RATE_METRICS = frozenset(
    {"ctr", "add_to_cart_rate", "conversion_rate", "repurchase_rate", "retention"}
)
METRIC_LABELS: Mapping[str, str] = {
    "ctr": "CTR",
    "add_to_cart_rate": "Add-to-cart rate",
    "conversion_rate": "Conversion rate",
    "revenue_per_user": "Revenue per user",
    "aov": "Average order value",
    "repurchase_rate": "Repurchase rate",
    "retention": "Retention",
}
Z95 = 1.959963984540054
Z80 = 0.8416212335729143


# ---------------------------------------------------------------------------- statistics
@dataclass(frozen=True, slots=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int
    """Denominator: impressions, users, buyers or orders."""
    successes: float | None = None
    """For rates: the numerator. For means: the sum of squares is kept in ``variance``."""
    variance: float | None = None
    """Per-unit variance (p(1−p) for a rate, sample variance for a mean)."""

    def as_dict(self) -> dict[str, float | int | None]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def wilson(k: float, n: int, z: float = Z95) -> Estimate:
    """Wilson score interval for k successes in n trials."""
    if n <= 0:
        return Estimate(None, None, None, 0, 0.0, None)
    k = min(max(k, 0.0), float(n))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n, k, p * (1 - p))


def mean_ci(values: list[float], z: float = Z95) -> Estimate:
    """Mean with a normal-approximation interval (sample standard deviation)."""
    n = len(values)
    if n == 0:
        return Estimate(None, None, None, 0)
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return Estimate(m, m - half, m + half, n, None, var)


def mean_estimate(n: int, mean: float, var: float, z: float = Z95) -> Estimate:
    """:func:`mean_ci` from a count, a mean and a sample variance."""
    if n <= 0:
        return Estimate(None, None, None, 0)
    half = z * math.sqrt(var / n)
    return Estimate(mean, mean - half, mean + half, n, None, var)


def _norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: str
    variant: str
    control: str
    variant_value: float | None
    control_value: float | None
    lift: float | None
    """Relative: variant / control − 1."""
    lift_low: float | None
    lift_high: float | None
    p_value: float | None
    significant: bool
    needed_per_variant: int | None
    """Units per variant needed to detect the observed difference (80 % power), if not yet."""
    statement: str

    def as_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "variant": self.variant,
            "control": self.control,
            "variant_value": self.variant_value,
            "control_value": self.control_value,
            "lift": self.lift,
            "lift_low": self.lift_low,
            "lift_high": self.lift_high,
            "p_value": self.p_value,
            "significant": self.significant,
            "needed_per_variant": self.needed_per_variant,
            "statement": self.statement,
        }


def compare(
    metric: str, variant: str, control: str, t: Estimate, c: Estimate, *, alpha: float = 0.05
) -> Comparison:
    """Variant vs control on one metric: lift, interval, p-value and a plain statement."""
    label = METRIC_LABELS.get(metric, metric)
    unit = "impressions" if metric == "ctr" else "orders" if metric == "aov" else "users"

    def result(**kw: object) -> Comparison:
        base: dict[str, object] = dict(
            metric=metric,
            variant=variant,
            control=control,
            variant_value=t.value,
            control_value=c.value,
            lift=None,
            lift_low=None,
            lift_high=None,
            p_value=None,
            significant=False,
            needed_per_variant=None,
        )
        base.update(kw)
        return Comparison(**base)  # type: ignore[arg-type]

    if t.value is None or c.value is None or t.n < 2 or c.n < 2:
        return result(
            statement=f"{label}: not enough data yet ({variant} n={t.n}, {control} n={c.n})"
        )
    vt, vc = (t.variance or 0.0), (c.variance or 0.0)
    se = math.sqrt(vt / t.n + vc / c.n)
    diff = t.value - c.value
    if metric in RATE_METRICS:  # pooled standard error for the test of two proportions
        pooled = ((t.successes or 0.0) + (c.successes or 0.0)) / (t.n + c.n)
        se_test = math.sqrt(pooled * (1 - pooled) * (1 / t.n + 1 / c.n))
    else:
        se_test = se
    p = 2 * _norm_sf(abs(diff) / se_test) if se_test > 0 else (1.0 if diff == 0 else 0.0)
    lift = lift_low = lift_high = None
    if c.value > 0:
        lift = t.value / c.value - 1
        if t.value > 0:
            se_log = math.sqrt(vt / (t.n * t.value**2) + vc / (c.n * c.value**2))
            log_ratio = math.log(t.value / c.value)
            lift_low = math.exp(log_ratio - Z95 * se_log) - 1
            lift_high = math.exp(log_ratio + Z95 * se_log) - 1
    significant = p < alpha
    lift_txt = f"{lift:+.1%}" if lift is not None else f"{diff:+.4g}"
    ci_txt = (
        f" (95% CI {lift_low:+.1%} to {lift_high:+.1%})"
        if lift_low is not None and lift_high is not None
        else ""
    )
    if significant:
        better = "better" if diff > 0 else "worse"
        statement = (
            f"{label}: {variant} is {better} than {control} by {lift_txt}{ci_txt}, "
            f"p={p:.3g} — significant"
        )
        needed = None
    else:
        needed = None
        if diff != 0 and (vt + vc) > 0:
            needed = math.ceil((Z95 + Z80) ** 2 * (vt + vc) / diff**2)
        more = (
            f"; about {needed:,} {unit} per variant would detect a difference this size"
            if needed is not None
            else ""
        )
        statement = (
            f"{label}: not yet significant — {variant} vs {control} {lift_txt}{ci_txt}, "
            f"p={p:.3g}{more}"
        )
    return result(
        lift=lift,
        lift_low=lift_low,
        lift_high=lift_high,
        p_value=p,
        significant=significant,
        needed_per_variant=needed,
        statement=statement,
    )

