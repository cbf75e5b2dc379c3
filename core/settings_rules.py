"""Alert rules in the settings tree (``alerts.rules``): one model, validated per type.

Every rule has ``id``, ``type``, ``metric``, ``level`` (a hierarchy level or "device"),
``for_s``, ``severity``, ``units``, ``lookback_s`` and ``title``. Then, per type:

* ``threshold`` (the default): ``op`` above|below, ``threshold``, ``clear`` (hysteresis:
  a pending or firing alert ends only when the value is back past ``clear``; default
  ``threshold``), ``window_s`` (0: each device's last value within ``lookback_s``; > 0:
  ``aggregation`` over every reading of the last ``window_s``) and ``aggregation``
  (mean|max|min|last; default the metric's).
* ``no_data``: ``silent_s``: a device or unit whose newest reading is older is a breach.
* ``rate``: ``direction`` rise|fall, ``change`` over ``over_s`` seconds, ``clear_change``
  (hysteresis, default ``change``), ``aggregation`` for a unit's value.
* ``kpi``: a ratio metric (``metrics.<id>.denominator``) against ``target`` (0..1, default
  the metric's), ``op`` below (default) or above, over ``period`` day|week|month (local
  calendar, the period so far) or ``window_s``; ``min_count``: a smaller denominator is
  not judged.

A key of another type is an error that names it (``silent_s`` on a threshold rule is a
mistake, not something to ignore). Defaults that depend on the type are filled in here,
so readers find ``clear``, ``clear_change`` and a kpi's ``op`` always set. References
to other sections (metric, level, the metric's target) are checked by
``core/settings.py`` ``_cross_check``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.settings_base import Label, _Section

RuleType = Literal["threshold", "no_data", "rate", "kpi"]
RULE_TYPES: tuple[RuleType, ...] = ("threshold", "no_data", "rate", "kpi")
RuleAggregation = Literal["mean", "max", "min", "last"]
Period = Literal["day", "week", "month"]
DEVICE_LEVEL = "device"  # a rule's level that judges each device on its own
# no_data without lookback_s: how far back the store is asked which devices it has seen.
NO_DATA_LOOKBACK_S = 7 * 86_400

# The keys each type takes besides the common ones.
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "threshold": frozenset({"op", "threshold", "clear", "window_s", "aggregation"}),
    "no_data": frozenset({"silent_s"}),
    "rate": frozenset({"direction", "change", "over_s", "clear_change", "aggregation"}),
    "kpi": frozenset({"op", "target", "period", "window_s", "min_count"}),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "threshold": ("op", "threshold"),
    "no_data": ("silent_s",),
    "rate": ("direction", "change", "over_s"),
    "kpi": (),
}
_TYPED_KEYS = frozenset().union(*_TYPE_KEYS.values())


class AlertRule(_Section):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    type: RuleType = "threshold"
    metric: str
    level: str
    for_s: Annotated[int, Field(ge=0)] = 0
    severity: Literal["info", "warning", "critical"] = "warning"
    units: list[str] | None = None  # only these unit codes (device ids at level device)
    lookback_s: Annotated[int, Field(gt=0)] = 900  # how far back a device's last value counts
    title: Label | None = None
    # threshold (op also kpi)
    op: Literal["above", "below"] | None = None
    threshold: float | None = None
    clear: float | None = None
    window_s: Annotated[int, Field(ge=0)] = 0  # also kpi
    aggregation: RuleAggregation | None = None  # also rate; None = the metric's
    # no_data
    silent_s: Annotated[int, Field(gt=0)] | None = None
    # rate
    direction: Literal["rise", "fall"] | None = None
    change: Annotated[float, Field(gt=0)] | None = None
    over_s: Annotated[int, Field(gt=0)] | None = None
    clear_change: Annotated[float, Field(ge=0)] | None = None
    # kpi
    target: Annotated[float, Field(ge=0, le=1)] | None = None
    period: Period | None = None
    min_count: Annotated[int, Field(ge=0)] = 10

    @model_validator(mode="after")
    def _per_type(self) -> AlertRule:
        problems = [*self._foreign_keys(), *self._missing_keys()]
        if not problems:
            problems = self._type_problems()
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self._with_type_defaults()

    def _foreign_keys(self) -> list[InitErrorDetails]:
        allowed = _TYPE_KEYS[self.type]
        defaults = {name: info.default for name, info in type(self).model_fields.items()}
        problems = []
        for key in sorted(_TYPED_KEYS - allowed):
            value = getattr(self, key)
            if key in self.model_fields_set and value != defaults[key]:
                owners = [kind for kind in RULE_TYPES if key in _TYPE_KEYS[kind]]
                problems.append(
                    _problem(
                        key,
                        value,
                        f"must not be set on a {self.type} rule (it belongs to "
                        f"type {' or '.join(owners)})",
                    )
                )
        return problems

    def _missing_keys(self) -> list[InitErrorDetails]:
        return [
            _problem(key, None, f"must be set for a {self.type} rule")
            for key in _REQUIRED[self.type]
            if getattr(self, key) is None
        ]

    def _type_problems(self) -> list[InitErrorDetails]:
        problems: list[InitErrorDetails] = []
        if self.type == "threshold" and self.clear is not None:
            assert self.threshold is not None
            if self.op == "above" and self.clear > self.threshold:
                problems.append(
                    _problem(
                        "clear",
                        self.clear,
                        f"must be at most threshold ({self.threshold:g}) for op above: the "
                        "alert ends when the value is back at or under it",
                    )
                )
            if self.op == "below" and self.clear < self.threshold:
                problems.append(
                    _problem(
                        "clear",
                        self.clear,
                        f"must be at least threshold ({self.threshold:g}) for op below: the "
                        "alert ends when the value is back at or over it",
                    )
                )
        if self.type == "rate" and self.clear_change is not None:
            assert self.change is not None
            if self.clear_change > self.change:
                problems.append(
                    _problem(
                        "clear_change",
                        self.clear_change,
                        f"must be at most change ({self.change:g})",
                    )
                )
        if self.type == "no_data" and "lookback_s" in self.model_fields_set:
            assert self.silent_s is not None
            if self.lookback_s <= self.silent_s:
                problems.append(
                    _problem(
                        "lookback_s",
                        self.lookback_s,
                        f"must be longer than silent_s ({self.silent_s}) for a no_data rule, "
                        "or a silent device drops out of what the store is asked",
                    )
                )
        if self.type == "kpi" and (self.period is None) == (self.window_s == 0):
            problems.append(
                _problem(
                    "period",
                    self.period,
                    "must be day, week or month, or window_s must be set instead "
                    "(one of the two) for a kpi rule",
                )
            )
        return problems

    def _with_type_defaults(self) -> AlertRule:
        defaults: dict[str, Any] = {}
        if self.type == "threshold" and self.clear is None:
            defaults["clear"] = self.threshold
        if self.type == "rate" and self.clear_change is None:
            defaults["clear_change"] = self.change
        if self.type == "kpi" and self.op is None:
            defaults["op"] = "below"
        if self.type == "no_data" and "lookback_s" not in self.model_fields_set:
            defaults["lookback_s"] = NO_DATA_LOOKBACK_S
        for key, value in defaults.items():
            # Frozen for everyone else; filled once here, while the model is being built.
            object.__setattr__(self, key, value)
        return self


def _problem(key: str, value: Any, message: str) -> InitErrorDetails:
    # The message starts with "must"/"is": settings._format_error shows it after the key.
    return InitErrorDetails(
        type=PydanticCustomError("alert_rule", message),
        loc=(key,),
        input=value,
    )
