"""Who is told, on the alerts console: the duty chain of each active alert (a device's alert
through its unit), who was e-mailed and how it went, who is on duty, the e-mails that
failed and the queue, the history's e-mail status, and notes — each within the user's
access (a ward officer sees nothing of another ward's). Real SQLite state database,
events routed and e-mailed through the real outbox."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from alerts.actions import InvalidAction
from alerts.outbox import Outbox
from core.errors import ConfigError
from core.settings import Settings
from dashboard.access import Access
from dashboard.alerts_data import OBJECT_COLUMNS, AlertSource, NotAllowed, active_alerts, exportable
from dashboard.alerts_delivery import email_queue, failed_emails, on_duty
from dashboard.alerts_history import add_note, alert_history
from layers.geography import Geography
from layers.levels import Hierarchy
from tests.conftest import FakeClock
from tests.unit.dashboard.alerts_seed import (
    AN,
    BINH,
    CAM_LE,
    CUONG,
    DA_NANG,
    DESK,
    HAI_VAN,
    NOW,
    SMTP_REFUSED,
    add_log,
    add_state,
    admin,
    officer,
    source,
    state_db,
    tell,
    with_roster,
    write_email,
)

FIRED = NOW - timedelta(minutes=30)
FACTS = "{}"  # routing asks only whether an event has facts


@dataclass
class Seeded:
    alerts: AlertSource
    engine: Engine
    clock: FakeClock
    failed_alone: int  # the escalation e-mail to Cường about Hải Vân
    failed_grouped: int  # one e-mail to Cường about Hải Vân and Cẩm Lệ
    binh_waiting: int


@pytest.fixture
def hierarchy(geography: Geography) -> Hierarchy:
    return geography.hierarchy


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = state_db(tmp_path)
    yield built
    built.dispose()


@pytest.fixture
def seeded(engine: Engine, settings: Settings, hierarchy: Hierarchy) -> Seeded:
    clock = FakeClock(NOW)
    made = source(engine, with_roster(settings), hierarchy, clock)
    # Hải Vân, PM2.5, episode 2: An told at step 0 (sent), nobody acknowledged, so the
    # escalation went to Cường (step 1), whose e-mail was refused.
    add_state(engine, "pm25-bad", HAI_VAN, "firing", since=FIRED, fired_at=FIRED, episode=2)
    firing = add_log(engine, "pm25-bad", HAI_VAN, 2, "firing", FIRED, "pending", FACTS)
    tell(engine, firing, [(AN, 0, "sent")], at=FIRED + timedelta(minutes=1))
    escalation = add_log(
        engine,
        "pm25-bad",
        HAI_VAN,
        2,
        "escalation-1",
        FIRED + timedelta(minutes=15),
        "pending",
        FACTS,
    )
    failed_alone = tell(engine, escalation, [(CUONG, 1, "failed")], at=NOW - timedelta(minutes=10))
    # Cẩm Lệ, PM2.5: Bình's e-mail waits (SMTP trouble), the desk's is not written yet.
    add_state(engine, "pm25-bad", CAM_LE, "firing", since=NOW, value=120.0, fired_at=NOW, episode=1)
    cam_le = add_log(engine, "pm25-bad", CAM_LE, 1, "firing", NOW, "pending", FACTS)
    waiting = tell(
        engine,
        cam_le,
        [(BINH, 0, "pending"), (DESK, 1, "unwritten")],
        at=NOW - timedelta(minutes=4),
    )
    # A device of Hải Vân silent: its alert names the device; An was told.
    add_state(engine, "air-no-data", "aq-0001", "firing", value=1200.0, fired_at=NOW, episode=1)
    silent = add_log(engine, "air-no-data", "aq-0001", 1, "firing", NOW, "pending", FACTS)
    tell(engine, silent, [(AN, 0, "sent")])
    # One e-mail to Cường about the Hải Vân device and Cẩm Lệ together, refused.
    one = add_log(engine, "air-no-data", "aq-0001", 1, "escalation-1", NOW, "pending", FACTS)
    two = add_log(engine, "pm25-bad", CAM_LE, 1, "escalation-1", NOW, "pending", FACTS)
    tell(engine, one, [(CUONG, 1, "unwritten")])
    tell(engine, two, [(CUONG, 1, "unwritten")])
    grouped = write_email(engine, CUONG, [one, two], "failed", subject="[CẢNH BÁO] 2 cảnh báo")
    return Seeded(made, engine, clock, failed_alone[0], grouped, waiting[0])


def by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(["rule_id", "unit_code"])


def test_each_alert_shows_its_duty_chain_now_and_who_was_told(
    seeded: Seeded, hierarchy: Hierarchy
) -> None:
    rows = by_key(active_alerts(seeded.alerts, officer(hierarchy, HAI_VAN), "vi"))
    assert sorted(rows.index) == [("air-no-data", "aq-0001"), ("pm25-bad", HAI_VAN)]
    pm25 = rows.loc[("pm25-bad", HAI_VAN)]
    # Now: the ward's officer on duty (not the night shift), the city, the desk.
    chain = pm25["duty_steps"]
    assert [(step.step, step.unit_code) for step in chain] == [
        (0, HAI_VAN),
        (1, DA_NANG),
        (2, None),
    ]
    assert [[person.email for person in step.people] for step in chain] == [
        [AN.email],
        [CUONG.email],
        [DESK.email],
    ]
    assert pm25["on_duty"] == (
        "0. Phường Hải Vân, Thành phố Đà Nẵng: Nguyễn Văn An <an@haivan.example.vn>; "
        "1. Thành phố Đà Nẵng: Phạm Văn Cường <cuong@danang.example.vn>; "
        "2. Trực ban: truc-ban@example.gov.vn"
    )
    # Told: An (sent, at 07:31 local) and Cường (escalation, refused).
    told = [(t.person.email, t.step, t.status, t.sent_at) for t in pm25["told_rows"]]
    assert told == [
        (AN.email, 0, "sent", FIRED + timedelta(minutes=1)),
        (CUONG.email, 1, "failed", None),
    ]
    assert pm25["told"] == (
        "Nguyễn Văn An <an@haivan.example.vn> (0): sent 2026-11-02 07:31; "
        "Phạm Văn Cường <cuong@danang.example.vn> (1): failed"
    )
    assert pm25["email_status"] == "sent"  # the firing e-mail went; the escalation's did not

    # A device's alert belongs to the device's ward: its chain starts there.
    device = rows.loc[("air-no-data", "aq-0001")]
    assert device["unit_name"] == "Trạm Hải Vân 1 (aq-0001), Phường Hải Vân, Thành phố Đà Nẵng"
    assert [step.unit_code for step in device["duty_steps"]] == [HAI_VAN, DA_NANG, None]
    assert [t.person.email for t in device["told_rows"]] == [AN.email, CUONG.email]

    # Cẩm Lệ's officer: their own alert only; Bình's e-mail waits, the desk's is unwritten.
    cam_le = by_key(active_alerts(seeded.alerts, officer(hierarchy, CAM_LE), "en"))
    assert list(cam_le.index) == [("pm25-bad", CAM_LE)]
    row = cam_le.loc[("pm25-bad", CAM_LE)]
    assert [(t.person.email, t.status) for t in row["told_rows"]] == [
        (BINH.email, "pending"),
        (DESK.email, "pending"),
        (CUONG.email, "failed"),
    ]
    assert row["email_status"] == "pending"
    assert row["on_duty"].startswith("0. Cam Le Ward, Da Nang City: Trần Thị Bình")
    assert not any("Nguyễn Văn An" in str(value) for value in cam_le.to_numpy().ravel())
    # Another province's officer: nothing.
    assert active_alerts(seeded.alerts, officer(hierarchy, "01"), "vi").empty


def test_who_is_on_duty_in_the_units_the_user_reaches(seeded: Seeded, hierarchy: Hierarchy) -> None:
    def shown(access: Access) -> list[tuple[str | None, list[str]]]:
        return [
            (entry.unit_code, [person.name for person in entry.people])
            for entry in on_duty(seeded.alerts, access, "vi")
        ]

    # The ward, the city above it (where an alert climbs), the desk last; not Cẩm Lệ.
    assert shown(officer(hierarchy, HAI_VAN, "viewer")) == [
        (DA_NANG, [CUONG.name]),
        (HAI_VAN, [AN.name]),
        (None, ["Trực ban"]),
    ]
    assert shown(officer(hierarchy, DA_NANG, "leader")) == [
        (DA_NANG, [CUONG.name]),
        (CAM_LE, [BINH.name]),
        (HAI_VAN, [AN.name]),
        (None, ["Trực ban"]),
    ]
    assert shown(officer(hierarchy, "01")) == [(None, ["Trực ban"])]
    assert shown(Access.nobody(hierarchy)) == []
    # Saturday 21:00 local: Cường works weekdays; Hải Vân's night shift is on, An too.
    seeded.clock.current = datetime(2026, 11, 7, 14, 0, tzinfo=UTC)
    assert shown(officer(hierarchy, HAI_VAN)) == [
        (HAI_VAN, ["Lê Thị Đêm", AN.name]),
        (None, ["Trực ban"]),
    ]


def test_a_roster_that_cannot_be_read_is_a_config_error_not_an_empty_list(
    seeded: Seeded, hierarchy: Hierarchy, tmp_path: Path
) -> None:
    settings = seeded.alerts.settings
    broken_alerts = settings.alerts.model_copy(update={"roster_file": str(tmp_path / "none.csv")})
    broken = AlertSource(
        seeded.engine,
        settings.model_copy(update={"alerts": broken_alerts}),
        hierarchy,
        seeded.clock,
        seeded.alerts.tz,
        devices=seeded.alerts.devices,
    )
    with pytest.raises(ConfigError, match=r"alerts\.roster_file"):
        on_duty(broken, officer(hierarchy, HAI_VAN))
    # The active list still shows, without a chain (the page says "không có dữ liệu").
    rows = by_key(active_alerts(broken, officer(hierarchy, HAI_VAN)))
    assert rows.loc[("pm25-bad", HAI_VAN), "duty_steps"] is None
    assert rows.loc[("pm25-bad", HAI_VAN), "told_rows"]  # who was told is still known


def test_failed_emails_of_the_users_units_only(seeded: Seeded, hierarchy: Hierarchy) -> None:
    def shown(access: Access) -> list[tuple[int, str | None, str, int]]:
        frame = failed_emails(seeded.alerts, access, "vi")
        subjects = [None if pd.isna(subject) else subject for subject in frame["subject"]]
        return list(
            zip(frame["id"], subjects, frame["alerts"], frame["hidden_alerts"], strict=True)
        )

    hai_van = "Bụi mịn PM2.5 ở mức Xấu – Phường Hải Vân, Thành phố Đà Nẵng"
    cam_le = "Bụi mịn PM2.5 ở mức Xấu – Phường Cẩm Lệ, Thành phố Đà Nẵng"
    device = (
        "Bụi mịn PM2.5: không có dữ liệu quá 15 phút – "  # the rule has no title: worded
        "Trạm Hải Vân 1 (aq-0001), Phường Hải Vân, Thành phố Đà Nẵng"
    )
    everything = [
        (seeded.failed_grouped, "[CẢNH BÁO] 2 cảnh báo", f"{device}; {cam_le}", 0),
        (
            seeded.failed_alone,
            "[CẢNH BÁO][Nghiêm trọng] Bụi mịn PM2.5 — Phường Hải Vân",
            hai_van,
            0,
        ),
    ]
    assert shown(admin(hierarchy)) == everything
    assert shown(officer(hierarchy, DA_NANG, "viewer")) == everything
    # A ward officer: the grouped e-mail shows their alert only, and not its subject.
    assert shown(officer(hierarchy, HAI_VAN, "leader")) == [
        (seeded.failed_grouped, None, device, 1),
        everything[1],
    ]
    assert shown(officer(hierarchy, CAM_LE)) == [(seeded.failed_grouped, None, cam_le, 1)]
    assert shown(officer(hierarchy, "01")) == []
    assert shown(Access.nobody(hierarchy)) == []
    frame = failed_emails(seeded.alerts, admin(hierarchy), "en")
    first = frame.iloc[0]
    assert (first["recipient"], first["last_error"], first["attempts"]) == (
        CUONG.email,
        SMTP_REFUSED,
        3,
    )
    assert first["last_attempt_at"] == NOW
    assert isinstance(frame["last_attempt_at"].dtype, pd.DatetimeTZDtype)
    assert len(failed_emails(seeded.alerts, admin(hierarchy), limit=1)) == 1


def test_the_queue_shows_how_long_the_oldest_email_waits(
    seeded: Seeded, hierarchy: Hierarchy
) -> None:
    queue = email_queue(seeded.alerts, officer(hierarchy, HAI_VAN, "viewer"))
    assert queue is not None
    assert (queue.waiting, queue.undelivered, queue.last_error) == (1, 1, None)
    assert queue.age_s(NOW) == 240
    assert queue.stuck(NOW) is True  # 4 minutes: an e-mail is sent within seconds
    assert queue.stuck(NOW - timedelta(minutes=3)) is False
    # The SMTP server answered 421: pending again, with the error to show.
    outbox = Outbox(seeded.engine)
    claimed = outbox.claim_due("test", now=NOW, lease_s=30)
    assert [email.id for email in claimed] == [seeded.binh_waiting]
    outbox.mark_retry(
        seeded.binh_waiting, now=NOW, error="421 4.3.2 try later", next_attempt_at=NOW
    )
    again = email_queue(seeded.alerts, admin(hierarchy))
    assert again is not None
    assert (again.waiting, again.last_error) == (1, "421 4.3.2 try later")
    assert email_queue(seeded.alerts, Access.nobody(hierarchy)) is None


def test_history_email_status_comes_from_the_emails(seeded: Seeded, hierarchy: Hierarchy) -> None:
    engine = seeded.engine
    past = NOW - timedelta(days=2)
    # Sent to one, refused for the other: failed. Written, not sent yet: pending.
    mixed = add_log(engine, "pm25-bad", HAI_VAN, 1, "firing", past, "pending", FACTS)
    tell(engine, mixed, [(AN, 0, "sent"), (DESK, 1, "failed")], at=past)
    add_log(engine, "pm25-bad", HAI_VAN, 1, "resolved", past + timedelta(hours=1))
    # Held by a silence; and a firing event from before the outbox (its own "failed").
    add_log(engine, "flood-alarm-3", HAI_VAN, 1, "firing", past, "silenced")
    add_log(engine, "flood-alarm-3", HAI_VAN, 2, "firing", past - timedelta(days=1), "failed")
    status = {
        (row.rule_id, row.unit_code, row.episode): row.email_status
        for row in alert_history(seeded.alerts, admin(hierarchy)).itertuples()
    }
    assert status == {
        ("pm25-bad", HAI_VAN, 2): "sent",
        ("pm25-bad", CAM_LE, 1): "pending",
        ("air-no-data", "aq-0001", 1): "sent",
        ("pm25-bad", HAI_VAN, 1): "failed",
        ("flood-alarm-3", HAI_VAN, 1): "silenced",
        ("flood-alarm-3", HAI_VAN, 2): "failed",
    }
    # The device's episode is the ward's: its officer sees it, Cẩm Lệ's does not.
    mine = alert_history(seeded.alerts, officer(hierarchy, HAI_VAN, "viewer"))
    assert ("air-no-data", "aq-0001") in set(zip(mine["rule_id"], mine["unit_code"], strict=True))
    theirs = alert_history(seeded.alerts, officer(hierarchy, CAM_LE, "viewer"))
    assert set(theirs["unit_code"]) == {CAM_LE}


def test_notes_within_access(seeded: Seeded, hierarchy: Hierarchy) -> None:
    alerts = seeded.alerts
    hai_van = officer(hierarchy, HAI_VAN)
    note = add_note(alerts, hai_van, "pm25-bad", HAI_VAN, 2, "Đã cử đội môi trường đến")
    seeded.clock.advance(300)
    device = add_note(alerts, hai_van, "air-no-data", "aq-0001", 1, "Thay pin")
    assert (note.author, note.at) == ("operator-20194", NOW)

    # Another ward's officer: the same words as for an episode that never fired.
    cam_le = officer(hierarchy, CAM_LE)
    with pytest.raises(NotAllowed) as other:
        add_note(alerts, cam_le, "pm25-bad", HAI_VAN, 2, "x")
    with pytest.raises(NotAllowed) as device_other:
        add_note(alerts, cam_le, "air-no-data", "aq-0001", 1, "x")
    with pytest.raises(NotAllowed) as unknown:
        add_note(alerts, cam_le, "pm25-bad", CAM_LE, 7, "x")
    assert str(other.value) == str(unknown.value) == str(device_other.value)
    assert unknown.value.in_lang("vi") == "không có cảnh báo này trong các đơn vị của bạn"
    for role in ("leader", "viewer"):
        with pytest.raises(NotAllowed, match="may view alerts"):
            add_note(alerts, officer(hierarchy, HAI_VAN, role), "pm25-bad", HAI_VAN, 2, "x")
    with pytest.raises(InvalidAction, match="the note's text is required"):
        add_note(alerts, hai_van, "pm25-bad", HAI_VAN, 2, "  ")
    audited = [(entry.action, entry.actor) for entry in alerts.actions.audit()]
    assert audited == [("note", "operator-20194"), ("note", "operator-20194")]

    # Shown under the alert (and in its history), with the author and the local time.
    rows = by_key(active_alerts(alerts, officer(hierarchy, HAI_VAN, "leader"), "vi"))
    assert [n.id for n in rows.loc[("pm25-bad", HAI_VAN), "note_rows"]] == [note.id]
    assert (
        rows.loc[("air-no-data", "aq-0001"), "notes"] == "2026-11-02 08:05 operator-20194: Thay pin"
    )
    assert device.key.unit_code == "aq-0001"
    history = by_key(alert_history(alerts, hai_van))
    assert history.loc[("pm25-bad", HAI_VAN), "notes"] == (
        "2026-11-02 08:00 operator-20194: Đã cử đội môi trường đến"
    )
    # Cẩm Lệ's officer sees no note of Hải Vân anywhere.
    for frame in (active_alerts(alerts, cam_le), alert_history(alerts, cam_le)):
        assert "Đã cử đội" not in " ".join(frame["notes"].astype(str))

    # The CSV: text columns for notes, who was told and the e-mail, no objects.
    csv = exportable(active_alerts(alerts, hai_van))
    assert not set(OBJECT_COLUMNS) & set(csv.columns)
    assert {"notes", "told", "email_status", "on_duty"} <= set(csv.columns)
    assert "note_rows" not in exportable(alert_history(alerts, hai_van)).columns


def test_a_database_error_in_who_was_told_leaves_the_list(
    seeded: Seeded, hierarchy: Hierarchy
) -> None:
    with seeded.engine.begin() as connection:
        connection.execute(text("ALTER TABLE alert_deliveries RENAME TO gone"))
    rows = by_key(active_alerts(seeded.alerts, officer(hierarchy, HAI_VAN)))
    pm25 = rows.loc[("pm25-bad", HAI_VAN)]
    assert pm25["told_rows"] is None
    assert pm25["email_status"] is None
    assert [step.unit_code for step in pm25["duty_steps"]] == [HAI_VAN, DA_NANG, None]
    history = alert_history(seeded.alerts, officer(hierarchy, HAI_VAN))
    assert history["email_status"].isna().all()
    assert len(history) == 2
