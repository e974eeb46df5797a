"""Errors of merchandising (rules, experiments) and of the reports built on them.

Each message says how to fix the problem. ``serving/errors.py`` maps them to HTTP statuses.
"""

from __future__ import annotations

from core.errors import ShopRankError


class RecsysError(ShopRankError):
    """Base class for online-ranking problems a user can fix."""


class RuleError(RecsysError):
    """Base class for merchandising-rule problems."""


class RuleValidationError(RuleError):
    """A rule cannot be applied as written; ``reasons`` lists every problem found."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("rule rejected: " + "; ".join(self.reasons))


class RuleConflictError(RuleError):
    """A rule with this id already exists."""

    def __init__(self, rule_id: str) -> None:
        self.rule_id = rule_id
        super().__init__(f"a rule with id {rule_id!r} already exists; update it or pick another id")


class RuleNotFoundError(RuleError):
    """No rule has the given id."""

    def __init__(self, rule_id: str) -> None:
        self.rule_id = rule_id
        super().__init__(f"no rule with id {rule_id!r}; list them with `shoprank rules list`")


class ExperimentError(RecsysError):
    """Base class for experiment problems (bad shares, overlapping experiments, bad state)."""


class ExperimentNotFoundError(ExperimentError):
    """No experiment has the given id."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        super().__init__(
            f"no experiment with id {experiment_id!r}; list them with `shoprank experiments list`"
        )


class ReportError(RecsysError):
    """A KPI report cannot be built (bad window, unknown experiment, no events)."""
