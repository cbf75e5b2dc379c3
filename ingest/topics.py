"""MQTT topics: the message contract's topic template, and the filters the worker subscribes to.

The default contract is ``city/<kind>/<device_id>`` (ARCHITECTURE "Default message
contract"). A template names its variable levels ``{kind}`` and ``{device_id}``; every
other level is a literal that must match exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ConfigError, DecodeError
from core.settings import IngestSettings

CONTRACT_TEMPLATE = "city/{kind}/{device_id}"

# A kind becomes an InfluxDB measurement and a catalogue key: same rule as MetricSettings.kind.
KIND_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A device id becomes a tag value and a file/URL key: letters, digits and . _ - only.
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_PLACEHOLDERS = ("{kind}", "{device_id}")
_SHOWN_MAX = 80


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "...")


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A topic shape such as ``city/{kind}/{device_id}``."""

    text: str
    levels: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> TopicTemplate:
        levels = tuple(text.split("/"))
        for placeholder in _PLACEHOLDERS:
            if levels.count(placeholder) != 1:
                raise ConfigError(
                    "topic template", text, f"must contain {placeholder} exactly once as a level"
                )
        for level in levels:
            if level in _PLACEHOLDERS:
                continue
            if not level or any(char in level for char in "+#{}"):
                raise ConfigError(
                    "topic template",
                    text,
                    "must have non-empty literal levels without + # { }",
                )
        return cls(text, levels)

    @property
    def described(self) -> str:
        """``city/<kind>/<device_id>``, for error messages."""
        return self.text.replace("{", "<").replace("}", ">")

    def subscription_filter(self) -> str:
        """The MQTT filter that receives every topic of this shape: ``city/+/+``."""
        return "/".join("+" if level in _PLACEHOLDERS else level for level in self.levels)

    def topic_for(self, kind: str, device_id: str) -> str:
        return self.text.replace("{kind}", kind).replace("{device_id}", device_id)

    def match(self, topic: str) -> tuple[str, str]:
        """(kind, device_id) of ``topic``; DecodeError saying which part is wrong."""
        parts = topic.split("/")
        if len(parts) != len(self.levels):
            raise DecodeError(
                f"topic {_shown(topic)} does not match {self.described}: "
                f"{len(parts)} levels instead of {len(self.levels)}"
            )
        found: dict[str, str] = {}
        for part, level in zip(parts, self.levels, strict=True):
            if level in _PLACEHOLDERS:
                found[level] = part
            elif part != level:
                raise DecodeError(
                    f"topic {_shown(topic)} does not match {self.described}: "
                    f"{_shown(part)} instead of {level!r}"
                )
        kind, device_id = found["{kind}"], found["{device_id}"]
        if not KIND_PATTERN.fullmatch(kind):
            raise DecodeError(
                f"topic {_shown(topic)}: kind {_shown(kind)} must be lower-case letters, digits"
                " and _ (starting with a letter, at most 32)"
            )
        if not DEVICE_ID_PATTERN.fullmatch(device_id):
            raise DecodeError(
                f"topic {_shown(topic)}: device id {_shown(device_id)} has illegal characters"
                " (allowed: letters, digits and . _ -, at most 64, starting with a letter"
                " or digit)"
            )
        return kind, device_id


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
