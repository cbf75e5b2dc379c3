"""The alerts console's data layer within a user's access: active alerts, evaluation
errors, acknowledging, silences, on duty. A commune officer sees nothing of another
commune's alerts and cannot act on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from alerts.actions import AckKey, InvalidAction, NoSuchSilence
from core.errors import RetryableError
from core.settings import Settings
from dashboard.access import Access
from dashboard.alerts_data import (
    AlertSource,
    NoSuchAlert,
    NotAllowed,
    acknowledge,
    active_alerts,
    codes_within,
    evaluation_errors,
    unacknowledge,
)
from dashboard.alerts_delivery import on_duty
from dashboard.alerts_silences import cancel_silence, silence, silence_targets, silences_frame
from layers.geography import Geography
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.unit.dashboard.alerts_seed import (
    CAM_LE,
    DA_NANG,
    HAI_VAN,
    NOW,
    TZ,
    add_state,
    admin,
    officer,
    source,
    state_db,
    with_roster,
)


@pytest.fixture
def hierarchy(geography: Geography) -> Hierarchy:
    return geography.hierarchy


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = state_db(tmp_path)
    yield built
    built.dispose()


@pytest.fixture
def alerts(engine: Engine, settings: Settings, hierarchy: Hierarchy) -> AlertSource:
    clock = FakeClock(NOW)
    made = source(engine, with_roster(settings, []), hierarchy, clock)  # the desk only
    fired = NOW - timedelta(minutes=30)
    add_state(engine, "pm25-bad", HAI_VAN, "firing", since=fired, fired_at=fired, episode=2)
    add_state(engine, "pm25-bad", CAM_LE, "firing", since=NOW, fired_at=NOW, episode=1)
    add_state(engine, "flood-alarm-3", HAI_VAN, "no_data", since=NOW, fired_at=fired, episode=1)
    add_state(engine, "flood-alarm-3", CAM_LE, "ok", value=0.5)
    add_state(engine, "pm25-bad", "20197", "pending", since=NOW - timedelta(seconds=20))
    add_state(engine, "pm25-bad", "20200", "error", error="store down")
    add_state(engine, "pm25-bad", "20209", "error", error="store down")
    add_state(engine, "pm25-bad", "unassigned", "firing", fired_at=NOW, episode=1)
    add_state(engine, "old-rule", HAI_VAN, "firing", fired_at=NOW, episode=4)  # not configured
    return made


def keys(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["rule_id"], frame["unit_code"], strict=True))


def test_each_user_sees_the_alerts_of_their_units_only(
    alerts: AlertSource, hierarchy: Hierarchy
) -> None:
    everything = active_alerts(alerts, admin(hierarchy), "vi")
    # Firing first within a severity (both rules are critical), the newest first.
    assert keys(everything) == [
        ("pm25-bad", CAM_LE),
        ("pm25-bad", "unassigned"),
        ("pm25-bad", HAI_VAN),
        ("flood-alarm-3", HAI_VAN),
        ("pm25-bad", "20197"),
    ]
    assert keys(active_alerts(alerts, officer(hierarchy, HAI_VAN), "vi")) == [
        ("pm25-bad", HAI_VAN),
        ("flood-alarm-3", HAI_VAN),
    ]
    assert keys(active_alerts(alerts, officer(hierarchy, CAM_LE, "leader"), "vi")) == [
        ("pm25-bad", CAM_LE)
    ]
    province = active_alerts(alerts, officer(hierarchy, DA_NANG, "viewer"), "vi")
    assert "unassigned" not in set(province["unit_code"])  # an unknown code: admins only
    assert len(province) == 4
    assert active_alerts(alerts, officer(hierarchy, "01"), "vi").empty  # Hà Nội
    assert active_alerts(alerts, Access.nobody(hierarchy), "vi").empty


def test_active_alert_rows_carry_names_values_and_episodes(
    alerts: AlertSource, hierarchy: Hierarchy
) -> None:
    frame = active_alerts(alerts, officer(hierarchy, HAI_VAN), "en").set_index("rule_id")
    pm25 = frame.loc["pm25-bad"]
    assert pm25["title"] == "PM2.5 at Bad level"
    assert pm25["severity"] == "critical"
    assert pm25["unit_name"] == "Hai Van Ward, Da Nang City"
    assert pm25["level"] == "commune"
    assert pm25["value"] == pytest.approx(92.4)
    assert pm25["metric_unit"] == "µg/m³"
    assert pm25["episode"] == 2
    assert pm25["since"] == NOW - timedelta(minutes=30)
    # No roster in the shipped configuration: the duty desk is told.
    assert pm25["on_duty"] == "0. Duty desk: truc-ban@example.gov.vn"
    assert isinstance(frame["since"].dtype, pd.DatetimeTZDtype)
    assert frame.loc["flood-alarm-3", "state"] == "no_data"
    vi = active_alerts(alerts, officer(hierarchy, HAI_VAN), "vi").set_index("rule_id")
    assert vi.loc["pm25-bad", "unit_name"] == "Phường Hải Vân, Thành phố Đà Nẵng"
    # A pending alert has no episode yet: nothing to acknowledge.
    pending = active_alerts(alerts, admin(hierarchy), "vi").set_index("unit_code")
    assert pd.isna(pending.loc["20197", "episode"])


def test_store_errors_are_one_line_per_rule(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    errors = evaluation_errors(alerts, officer(hierarchy, DA_NANG), "vi")
    assert errors.to_dict("records") == [
        {
            "rule_id": "pm25-bad",
            "title": "Bụi mịn PM2.5 ở mức Xấu",
            "units": 2,
            "error": "store down",
        }
    ]
    assert evaluation_errors(alerts, officer(hierarchy, HAI_VAN), "vi").empty
    assert "20200" not in set(active_alerts(alerts, admin(hierarchy))["unit_code"])


def test_acknowledge_within_access_only(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    hai_van = officer(hierarchy, HAI_VAN)
    ack = acknowledge(alerts, hai_van, "pm25-bad", HAI_VAN, 2, "đang xử lý")
    assert (ack.acked_by, ack.comment) == ("operator-20194", "đang xử lý")
    row = active_alerts(alerts, hai_van).set_index("rule_id").loc["pm25-bad"]
    assert (row["acked_by"], row["ack_comment"]) == ("operator-20194", "đang xử lý")
    assert row["acked_at"] == NOW

    # The officer of Cẩm Lệ: another commune's alert gets the words of an unknown unit.
    cam_le = officer(hierarchy, CAM_LE)
    with pytest.raises(NotAllowed) as other:
        acknowledge(alerts, cam_le, "pm25-bad", HAI_VAN, 2)
    with pytest.raises(NotAllowed) as unknown:
        acknowledge(alerts, cam_le, "pm25-bad", "99999", 1)
    assert str(other.value) == str(unknown.value)
    assert other.value.in_lang("en") == "there is no such alert in your units"
    with pytest.raises(NotAllowed):
        unacknowledge(alerts, cam_le, "pm25-bad", HAI_VAN, 2)
    # Leaders and viewers read only.
    for role in ("leader", "viewer"):
        with pytest.raises(NotAllowed, match="may view alerts but not acknowledge"):
            acknowledge(alerts, officer(hierarchy, HAI_VAN, role), "pm25-bad", HAI_VAN, 2)
    # An episode that is not the open one, a pending alert, an ok one: nothing to ack.
    for rule, unit, episode in (
        ("pm25-bad", HAI_VAN, 1),
        ("pm25-bad", "20197", 0),
        ("flood-alarm-3", CAM_LE, 1),
    ):
        with pytest.raises(NoSuchAlert, match="no longer open"):
            acknowledge(alerts, admin(hierarchy), rule, unit, episode)
    assert [e.actor for e in alerts.actions.audit()] == ["operator-20194"]

    assert unacknowledge(alerts, hai_van, "pm25-bad", HAI_VAN, 2) is True
    assert alerts.actions.acks([AckKey("pm25-bad", HAI_VAN, 2)]) == {}
    assert pd.isna(active_alerts(alerts, hai_van).set_index("rule_id").loc["pm25-bad", "acked_by"])


def test_silences_within_access(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    until = NOW + timedelta(hours=1)
    hai_van, cam_le, root = (
        officer(hierarchy, HAI_VAN),
        officer(hierarchy, CAM_LE),
        admin(hierarchy),
    )
    mine = silence(alerts, hai_van, "unit", HAI_VAN, until, "bảo trì")
    assert mine.author == "operator-20194"
    with pytest.raises(NotAllowed, match="no such unit in your units"):
        silence(alerts, cam_le, "unit", HAI_VAN, until, "x")
    with pytest.raises(NotAllowed, match="no such device in your units"):
        silence(alerts, cam_le, "device", "aq-0001", until, "x")
    with pytest.raises(NotAllowed, match="no such device in your units"):
        silence(alerts, cam_le, "device", "no-such-device", until, "x")
    with pytest.raises(NotAllowed, match="only an administrator"):
        silence(alerts, hai_van, "rule", "pm25-bad", until, "x")
    with pytest.raises(NotAllowed, match="may view alerts"):
        silence(alerts, officer(hierarchy, HAI_VAN, "leader"), "unit", HAI_VAN, until, "x")
    with pytest.raises(InvalidAction, match="a reason is required"):
        silence(alerts, hai_van, "device", "aq-0001", until, " ")
    with pytest.raises(InvalidAction, match="no rule nope"):
        silence(alerts, root, "rule", "nope", until, "x")
    with pytest.raises(InvalidAction, match="no administrative unit with code 99999"):
        silence(alerts, root, "unit", "99999", until, "x")
    device = silence(alerts, cam_le, "device", "aq-0002", until, "thay pin")
    city = silence(alerts, root, "unit", DA_NANG, NOW + timedelta(hours=2), "diễn tập")

    # The active list shows what mutes each alert.
    rows = active_alerts(alerts, hai_van).set_index("rule_id")
    assert rows.loc["pm25-bad", "silence_id"] == city.id  # the one ending last
    assert rows.loc["pm25-bad", "silence_reason"] == "diễn tập"

    # Hải Vân sees its own silence and the city's (which mutes it), not Cẩm Lệ's device;
    # it may cancel only its own.
    frame = silences_frame(alerts, hai_van, "vi").set_index("id")
    assert list(frame.index) == [mine.id, city.id]
    assert list(frame["can_cancel"]) == [True, False]
    assert frame.loc[city.id, "target_name"] == "Thành phố Đà Nẵng"
    assert list(silences_frame(alerts, cam_le)["target_name"]) == [
        "Trạm Cẩm Lệ 1",
        "Thành phố Đà Nẵng",
    ]
    assert len(silences_frame(alerts, root)) == 3
    assert silences_frame(alerts, officer(hierarchy, "01")).empty

    with pytest.raises(NotAllowed, match="a unit above yours"):
        cancel_silence(alerts, hai_van, city.id)
    with pytest.raises(NoSuchSilence) as invisible:
        cancel_silence(alerts, hai_van, device.id)
    with pytest.raises(NoSuchSilence) as missing:
        cancel_silence(alerts, hai_van, 999)
    assert invisible.value.en.replace(str(device.id), "N") == missing.value.en.replace("999", "N")
    cancelled = cancel_silence(alerts, hai_van, mine.id)
    assert cancelled.cancelled_by == "operator-20194"
    assert [s.id for s in alerts.actions.active_silences()] == [device.id, city.id]


def test_silence_targets_follow_access(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    hai_van = silence_targets(alerts, officer(hierarchy, HAI_VAN), "vi")
    assert hai_van["unit"] == [(HAI_VAN, "Phường Hải Vân, Thành phố Đà Nẵng (20194)")]
    assert hai_van["device"] == [("aq-0001", "Trạm Hải Vân 1 (aq-0001)")]
    assert hai_van["rule"] == []
    province = silence_targets(alerts, officer(hierarchy, DA_NANG), "vi")
    assert province["unit"][0][0] == DA_NANG  # the province first, then its communes
    assert len(province["unit"]) == 1 + len(hierarchy.children(DA_NANG))
    assert silence_targets(alerts, officer(hierarchy, DA_NANG, "viewer")) == {
        "unit": [],
        "device": [],
        "rule": [],
    }
    assert [rule for rule, _ in silence_targets(alerts, admin(hierarchy))["rule"]] == [
        rule.id for rule in alerts.settings.alerts.rules
    ]


def test_codes_within(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    hai_van = officer(hierarchy, HAI_VAN)
    assert codes_within(alerts, admin(hierarchy), None) is None
    assert codes_within(alerts, hai_van, None) == {HAI_VAN}
    assert codes_within(alerts, hai_van, DA_NANG) == {HAI_VAN}  # only what they see inside
    assert codes_within(alerts, hai_van, CAM_LE) == set()
    assert codes_within(alerts, hai_van, "99999") == set()
    assert codes_within(alerts, admin(hierarchy), "unassigned") == {"unassigned"}
    assert len(codes_within(alerts, officer(hierarchy, DA_NANG), DA_NANG) or ()) == 1 + len(
        hierarchy.children(DA_NANG)
    )


def test_without_a_roster_the_desk_is_on_duty(alerts: AlertSource, hierarchy: Hierarchy) -> None:
    desk = on_duty(alerts, officer(hierarchy, HAI_VAN, "viewer"), "vi")
    assert [(entry.unit_code, entry.unit_name) for entry in desk] == [(None, "Trực ban")]
    assert [person.email for person in desk[0].people] == ["truc-ban@example.gov.vn"]
    assert on_duty(alerts, Access.nobody(hierarchy)) == []


def test_a_missing_state_database_is_retryable(
    settings: Settings, hierarchy: Hierarchy, tmp_path: Path
) -> None:
    engine = state_db(tmp_path)
    unprepared = AlertSource(engine, settings, hierarchy, FakeClock(NOW), TZ)
    with pytest.raises(RetryableError, match="alert states could not be read"):
        active_alerts(unprepared, admin(hierarchy))
    engine.dispose()
