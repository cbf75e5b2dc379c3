"""MQTT topics: the message contracts' topic templates, and the filters the worker subscribes to.

The default contract is ``city/<kind>/<device_id>`` (ARCHITECTURE "Default message
contract"). A template names its variable levels with placeholders (``{kind}``,
``{device_id}``, ``{service}``, ``{unit_code}``); every other level is a literal that must
match exactly. Which placeholders a template needs depends on its contract's format
(docs/design/005-message-contracts.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.errors import ConfigError, DecodeError
from core.settings import IngestSettings

CONTRACT_TEMPLATE = "city/{kind}/{device_id}"

# A kind becomes an InfluxDB measurement and a catalogue key: same rule as MetricSettings.kind.
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A device id becomes a tag value and a file/URL key: letters, digits and . _ - only.
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A unit code is looked up in the hierarchy; this only keeps odd text out of the reason.
UNIT_CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")

PLACEHOLDERS: dict[str, tuple[re.Pattern[str], str]] = {
    "{kind}": (
        KIND_PATTERN,
        "kind {} must be lower-case letters, digits and _ (starting with a letter, at most 32)",
    ),
    "{device_id}": (
        DEVICE_ID_PATTERN,
        "device id {} has illegal characters (allowed: letters, digits and . _ -, at most 64,"
        " starting with a letter or digit)",
    ),
    "{service}": (
        KIND_PATTERN,
        "service {} must be lower-case letters, digits and _ (starting with a letter, at most 32)",
    ),
    "{unit_code}": (UNIT_CODE_PATTERN, "unit code {} must be letters, digits and . _ -"),
}
_KIND_AND_DEVICE = ("{kind}", "{device_id}")
_SHOWN_MAX = 80
# Matched topics kept per template: one per device, so a few MB at most; the cache is
# emptied when full, which keeps a flood of made-up topics from growing memory.
MAX_CACHED_TOPICS = 100_000


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "...")


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A topic shape such as ``city/{kind}/{device_id}``."""

    text: str
    levels: tuple[str, ...]
    names: tuple[str, ...]  # the placeholders in the order of the levels, braces kept
    _cache: dict[str, dict[str, str]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @classmethod
    def parse(
        cls,
        text: str,
        required: Iterable[str] = _KIND_AND_DEVICE,
        optional: Iterable[str] = (),
        *,
        key: str = "topic template",
    ) -> TopicTemplate:
        """Check ``text``: each placeholder of ``required`` exactly once, those of
        ``optional`` at most once, no other; ConfigError under ``key`` otherwise."""
        levels = tuple(text.split("/"))
        required, allowed = tuple(required), (*required, *optional)
        for placeholder in required:
            if levels.count(placeholder) != 1:
                raise ConfigError(key, text, f"must contain {placeholder} exactly once as a level")
        for level in levels:
            if level in allowed:
                if levels.count(level) != 1:
                    raise ConfigError(key, text, f"must contain {level} at most once")
                continue
            if level.startswith("{") and level.endswith("}"):
                raise ConfigError(
                    key, text, f"may use only the placeholders {', '.join(allowed)}: not {level}"
                )
            if not level or any(char in level for char in "+#{}"):
                raise ConfigError(key, text, "must have non-empty literal levels without + # { }")
        names = tuple(level for level in levels if level in allowed)
        return cls(text, levels, names)

    @property
    def described(self) -> str:
        """``city/<kind>/<device_id>``, for error messages."""
        return self.text.replace("{", "<").replace("}", ">")

    def subscription_filter(self) -> str:
        """The MQTT filter that receives every topic of this shape: ``city/+/+``."""
        return "/".join("+" if level in self.names else level for level in self.levels)

    def topic_for(self, kind: str, device_id: str) -> str:
        return self.text.replace("{kind}", kind).replace("{device_id}", device_id)

    def accepts(self, topic: str) -> bool:
        """True when ``topic`` has this template's levels and literals (placeholders unchecked)."""
        parts = topic.split("/")
        return len(parts) == len(self.levels) and all(
            level in self.names or part == level
            for part, level in zip(parts, self.levels, strict=True)
        )

    def fields(self, topic: str) -> dict[str, str]:
        """{"{kind}": "air", "{device_id}": "aq-1"}; DecodeError (bad_topic) saying which part
        is wrong. The caller must not modify the result (it is cached)."""
        found = self._cache.get(topic)
        if found is not None:
            return found
        found = self._match(topic)
        if len(self._cache) >= MAX_CACHED_TOPICS:
            self._cache.clear()
        self._cache[topic] = found
        return found

    def _match(self, topic: str) -> dict[str, str]:
        parts = topic.split("/")
        if len(parts) != len(self.levels):
            raise DecodeError(
                f"topic {_shown(topic)} does not match {self.described}: "
                f"{len(parts)} levels instead of {len(self.levels)}",
                "bad_topic",
            )
        found: dict[str, str] = {}
        for part, level in zip(parts, self.levels, strict=True):
            if level in self.names:
                pattern, problem = PLACEHOLDERS[level]
                if not pattern.fullmatch(part):
                    raise DecodeError(
                        f"topic {_shown(topic)}: " + problem.format(_shown(part)), "bad_topic"
                    )
                found[level] = part
            elif part != level:
                raise DecodeError(
                    f"topic {_shown(topic)} does not match {self.described}: "
                    f"{_shown(part)} instead of {level!r}",
                    "bad_topic",
                )
        return found

    def match(self, topic: str) -> tuple[str, str]:
        """(kind, device_id) of ``topic``; DecodeError saying which part is wrong."""
        found = self.fields(topic)
        return found["{kind}"], found["{device_id}"]


CONTRACT = TopicTemplate.parse(CONTRACT_TEMPLATE)


def parse_topic(topic: str, template: TopicTemplate = CONTRACT) -> tuple[str, str]:
    """(kind, device_id) of a topic of the message contract; DecodeError otherwise."""
    return template.match(topic)


def check_filter(topic_filter: str, key: str) -> str:
    """An MQTT topic filter as the spec allows it: ``+`` and ``#`` only as whole levels,
    ``#`` only last. ConfigError names the settings key."""
    if not topic_filter:
        raise ConfigError(key, topic_filter, "must be a non-empty MQTT topic filter")
    if topic_filter.startswith("$share/"):
        raise ConfigError(key, topic_filter, "must not carry $share/ (use ingest.shared_group)")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ConfigError(key, topic_filter, "may use # only as the whole last level")
        if "+" in level and level != "+":
            raise ConfigError(key, topic_filter, "may use + only as a whole level")
    return topic_filter


def subscription_filters(ingest: IngestSettings) -> list[str]:
    """The filters to subscribe to, with ``$share/<group>/`` when several workers share the
    stream (each message then goes to one worker of the group)."""
    filters = [
        check_filter(topic_filter, f"ingest.topics.{index}")
        for index, topic_filter in enumerate(ingest.topics)
    ]
    group = ingest.shared_group
    if group is None:
        return filters
    if not group or any(char in group for char in "/+#"):
        raise ConfigError("ingest.shared_group", group, "must be a name without / + #")
    return [f"$share/{group}/{topic_filter}" for topic_filter in filters]
