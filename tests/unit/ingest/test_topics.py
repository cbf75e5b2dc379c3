"""Topic template parsing and the subscription filters built from settings."""

from __future__ import annotations

import pytest

from core.errors import ConfigError, DecodeError
from core.settings import IngestSettings
from ingest.topics import CONTRACT, TopicTemplate, parse_topic, subscription_filters


def test_contract_topic_gives_kind_and_device() -> None:
    assert parse_topic("city/air/aq-0001") == ("air", "aq-0001")
    assert parse_topic("city/water/wl-camle") == ("water", "wl-camle")


def test_contract_filter_and_topic_for_round_trip() -> None:
    assert CONTRACT.subscription_filter() == "city/+/+"
    assert CONTRACT.topic_for("air", "aq-7") == "city/air/aq-7"
    assert parse_topic(CONTRACT.topic_for("air", "aq-7")) == ("air", "aq-7")


def test_other_template_with_literals_around_the_placeholders() -> None:
    template = TopicTemplate.parse("danang/{kind}/sensors/{device_id}/up")
    assert template.subscription_filter() == "danang/+/sensors/+/up"
    assert template.match("danang/air/sensors/aq-1/up") == ("air", "aq-1")
    with pytest.raises(DecodeError, match="'down' instead of 'up'"):
        template.match("danang/air/sensors/aq-1/down")


def test_device_before_kind_in_a_template() -> None:
    template = TopicTemplate.parse("{device_id}/{kind}")
    assert template.match("aq-1/air") == ("air", "aq-1")


@pytest.mark.parametrize(
    "text",
    ["city/+/{device_id}", "city/{kind}", "{kind}/{kind}/{device_id}", "city//{kind}/{device_id}"],
)
def test_bad_templates_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="topic template"):
        TopicTemplate.parse(text)


def test_filters_without_shared_group() -> None:
    ingest = IngestSettings(topics=["city/+/+", "gov/#"])
    assert subscription_filters(ingest) == ["city/+/+", "gov/#"]


def test_filters_with_shared_group() -> None:
    ingest = IngestSettings(topics=["city/+/+", "gov/#"], shared_group="cityops")
    assert subscription_filters(ingest) == ["$share/cityops/city/+/+", "$share/cityops/gov/#"]


@pytest.mark.parametrize(
    ("topics", "problem"),
    [
        (["city/#/x"], "ingest.topics.0 may use # only as the whole last level"),
        (["city/+/+", "city/a#"], "ingest.topics.1 may use # only"),
        (["city/air+/x"], "may use + only as a whole level"),
        ([""], "must be a non-empty MQTT topic filter"),
        (["$share/g/city/+/+"], "use ingest.shared_group"),
    ],
)
def test_bad_filters_name_the_key(topics: list[str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        subscription_filters(IngestSettings(topics=topics))
    assert problem in str(caught.value)


@pytest.mark.parametrize("group", ["a/b", "a+", "#", ""])
def test_bad_shared_group_is_a_config_error(group: str) -> None:
    with pytest.raises(ConfigError, match=r"ingest\.shared_group"):
        subscription_filters(IngestSettings(shared_group=group))
