"""`cityops alerts …` through the typer app on a real state database (a SQLite file, and
PostgreSQL where actions are recorded): list, ack/unack/note, silences, the audit log, the
duty roster and the e-mail outbox. The alert states are written as the engine writes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, MetaData
from typer.testing import CliRunner

from alerts.action_records import MAX_SILENCE, local_time, silence_duration
from alerts.actions import AckKey, AlertActions, InvalidAction
from alerts.facts import Person
from alerts.outbox import Outbox
from alerts.repository import AlertRepository
from core.cli import app
from core.db import make_engine
from core.types import Notification
from tests.unit.dashboard.alerts_seed import add_state

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
HAI_VAN_NAME = "Phường Hải Vân, Thành phố Đà Nẵng"
RESOLVED = "Đã cử đội kiểm tra, nguồn khói từ bãi rác Khánh Sơn"


def drop_everything(engine: Engine) -> None:
    tables = MetaData()
    tables.reflect(engine)
    tables.drop_all(engine)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    built = make_engine(url)
    drop_everything(built)  # the PostgreSQL database lives for the whole module
    AlertRepository(built).create_schema()
    yield built
    drop_everything(built)
    built.dispose()


@pytest.fixture
def firing(engine: Engine) -> datetime:
    """pm25-bad firing on Hải Vân in its 2nd episode; flood-alarm-3 pending (never fired)
    on Cẩm Lệ; pm25-bad ok on Cẩm Lệ after one episode. Returns when Hải Vân fired."""
    now = datetime.now(UTC).replace(microsecond=0)
    fired = now - timedelta(minutes=20)
    add_state(engine, "pm25-bad", "20194", "firing", since=fired, fired_at=fired, episode=2)
    add_state(engine, "flood-alarm-3", "20260", "pending", since=now, value=2.0)
    add_state(engine, "pm25-bad", "20260", "ok", since=now, value=12.0, episode=1)
    return fired


def run(url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    runner = CliRunner(env={"CITYOPS_DATABASE__URL": url, **(env or {})})
    result = runner.invoke(app, ["alerts", *args, "--config", CONFIG])
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_every_command(sqlite_url: str) -> None:
    code, out, _ = run(sqlite_url, "--help")
    assert code == 0
    for command in (
        "run",
        "list",
        "ack",
        "unack",
        "note",
        "silence",
        "silences",
        "unsilence",
        "audit",
        "roster",
        "outbox",
    ):
        assert f"│ {command} " in out, command


def test_without_a_command_the_engine_runs(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cityops alerts` (the systemd unit) and `cityops alerts run` start the engine; a
    sub-command does not."""
    started: list[tuple[Path, bool]] = []
    monkeypatch.setattr("core.cli_alerts.run_engine", lambda c, v: started.append((c, v)))
    runner = CliRunner(env={"CITYOPS_DATABASE__URL": sqlite_url})
    assert runner.invoke(app, ["alerts", "--config", CONFIG]).exit_code == 0
    assert runner.invoke(app, ["alerts", "run", "--config", CONFIG, "--verbose"]).exit_code == 0
    assert runner.invoke(app, ["alerts", "list", "--config", CONFIG]).exit_code == 0
    assert started == [(Path(CONFIG), False), (Path(CONFIG), True)]


def test_list_shows_active_alerts_with_full_unit_names(
    url: str, engine: Engine, firing: datetime
) -> None:
    code, out, err = run(url, "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split("  ")[0] == "quy tắc/rule"
    hai_van = next(line for line in lines if "20194" in line)
    assert HAI_VAN_NAME in hai_van  # the diacritics survive to the terminal
    assert "firing" in hai_van
    assert "92,4 µg/m³" in hai_van
    assert firing.astimezone(ICT).strftime("%d/%m/%Y %H:%M") in hai_van  # local time
    assert "flood-alarm-3" in lines[2]  # firing first, then pending
    assert "pm25-bad  20260" not in out  # ok is not active
    assert lines[-1].startswith("2 cảnh báo / alerts")

    code, out, _ = run(url, "list", "--all", "--unit", "20260", "--json")
    assert code == 0
    records = json.loads(out)
    assert [(r["rule_id"], r["unit_code"], r["state"]) for r in records] == [
        ("flood-alarm-3", "20260", "pending"),
        ("pm25-bad", "20260", "ok"),
    ]
    assert records[0]["unit_name"] == "Phường Cẩm Lệ, Thành phố Đà Nẵng"
    code, _, err = run(url, "list", "--unit", "99")
    assert code == 1
    assert "no administrative unit with code '99'" in err


def test_ack_unack_note_silence_unsilence_audit(url: str, engine: Engine, firing: datetime) -> None:
    actions = AlertActions(engine)
    code, out, err = run(
        url, "ack", "pm25-bad", "20194", "--by", "nguyenvana", "--comment", "đang xử lý"
    )
    assert code == 0, err
    assert f"pm25-bad / 20194 ({HAI_VAN_NAME}), đợt/episode 2" in out  # the current episode
    current = AckKey("pm25-bad", "20194", 2)
    assert actions.acks([current])[current].acked_by == "nguyenvana"
    code, out, _ = run(url, "list", "--json")
    assert json.loads(out)[0]["acked_by"] == "nguyenvana"

    code, _, err = run(url, "unack", "pm25-bad", "20194", "--by", "tranthib", "--comment", "nhầm")
    assert code == 0, err
    assert actions.acks([current]) == {}
    code, _, err = run(url, "unack", "pm25-bad", "20194", "--by", "tranthib")
    assert code == 1
    assert "is not acknowledged" in err

    # A note on the first episode, long over: how it was resolved.
    code, _, err = run(
        url, "note", "pm25-bad", "20194", "--by", "nguyenvana", "--episode", "1", "--text", RESOLVED
    )
    assert code == 0, err
    first = AckKey("pm25-bad", "20194", 1)
    assert [(n.author, n.text) for n in actions.notes([first, current])[first]] == [
        ("nguyenvana", RESOLVED)
    ]

    code, out, err = run(
        url,
        "silence",
        "--unit",
        "48",
        "--for",
        "2h",
        "--reason",
        "bảo trì trạm",
        "--by",
        "tranthib",
    )
    assert code == 0, err
    assert "Thành phố Đà Nẵng" in out
    (silence,) = actions.active_silences()
    assert (silence.kind, silence.target, silence.author) == ("unit", "48", "tranthib")
    assert timedelta(hours=2) - (silence.ends_at - silence.starts_at) < timedelta(seconds=5)
    assert actions.silenced("pm25-bad", "48") == silence
    code, out, _ = run(url, "silences")
    assert code == 0
    assert "bảo trì trạm" in out
    assert "hiệu lực/in force" in out

    code, out, err = run(url, "unsilence", str(silence.id), "--by", "root")
    assert code == 0, err
    assert actions.active_silences() == []
    code, _, err = run(url, "unsilence", str(silence.id), "--by", "root")
    assert code == 1
    assert f"silence {silence.id} is over" in err
    code, _, err = run(url, "unsilence", "999", "--by", "root")
    assert code == 1
    assert "there is no silence 999" in err
    code, out, _ = run(url, "silences", "--all")
    assert "đã huỷ/cancelled root" in out

    entries = actions.audit()
    assert [(e.action, e.actor, e.target) for e in entries] == [
        ("cancel_silence", "root", "unit:48"),
        ("silence", "tranthib", "unit:48"),
        ("note", "nguyenvana", "pm25-bad/20194"),
        ("unack", "tranthib", "pm25-bad/20194"),
        ("ack", "nguyenvana", "pm25-bad/20194"),
    ]
    assert entries[2].detail["text"] == RESOLVED
    assert entries[3].detail == {"episode": 2, "comment": "nhầm"}
    code, out, _ = run(url, "audit", "--actor", "nguyenvana")
    rows = out.splitlines()[1:]
    assert [row.split()[3] for row in rows] == ["note", "ack"]  # date, time, actor, action
    assert RESOLVED in rows[0]
    assert "đợt/ep. 2 · đang xử lý" in rows[1]
    code, out, _ = run(url, "audit", "--limit", "1")
    assert len(out.splitlines()) == 2
    assert "cancel_silence" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pm25-nope", "20194"], "no rule 'pm25-nope' in alerts.rules (pm25-bad, pm25-poor"),
        (["pm25-bad", "99999"], "no administrative unit with code '99999'"),
        (
            ["pm25-bad", "20197"],
            "pm25-bad / 20197 (Phường Liên Chiểu, Thành phố Đà Nẵng) has not fired yet",
        ),
        (["flood-alarm-3", "20260"], "has not fired yet"),  # pending, never fired
        (["pm25-bad", "20194", "--episode", "3"], "no episode 3 of pm25-bad / 20194"),
        (["pm25-bad", "20194", "--episode", "0"], "episodes 1–2"),
    ],
)
def test_ack_of_an_unknown_alert_exits_1_saying_why(
    url: str, firing: datetime, engine: Engine, args: list[str], message: str
) -> None:
    code, _, err = run(url, "ack", *args, "--by", "nguyenvana")
    assert code == 1
    assert message in err
    assert err.startswith("lỗi / error: ")
    assert AlertActions(engine).audit() == []


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    built = make_engine(sqlite_url)
    yield built
    built.dispose()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 1h30m ", timedelta(hours=1, minutes=30)),
        ("2 H", timedelta(hours=2)),
        ("90d", MAX_SILENCE),
        ("2160h", MAX_SILENCE),
    ],
)
def test_silence_durations(text: str, expected: timedelta) -> None:
    assert silence_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must look like 30m, 2h or 1d"),
        ("2", "must look like 30m, 2h or 1d"),
        ("2x", "must look like 30m, 2h or 1d"),
        ("-1h", "must look like 30m, 2h or 1d"),
        ("1.5h", "must look like 30m, 2h or 1d"),
        ("0m", "longer than 0 and 90 days at most"),
        ("91d", "longer than 0 and 90 days at most"),
        ("2161h", "longer than 0 and 90 days at most"),
    ],
)
def test_bad_silence_durations(text: str, message: str) -> None:
    with pytest.raises(InvalidAction, match=message):
        silence_duration(text)


def test_silence_bounds_and_targets_refused(sqlite_url: str, sqlite_engine: Engine) -> None:
    base = ["silence", "--reason", "x", "--by", "root"]
    cases = [
        (["--unit", "48", "--for", "91d"], 1, "90 days at most"),
        (["--unit", "48", "--for", "0m"], 1, "longer than 0"),
        (["--unit", "48", "--for", "soon"], 1, "must look like 30m, 2h or 1d: 'soon'"),
        (["--unit", "99", "--for", "1h"], 1, "no administrative unit with code '99'"),
        (["--rule", "nope", "--for", "1h"], 1, "no rule 'nope' in alerts.rules"),
        (["--unit", "48", "--until", "01/01/2020 07:00"], 1, "after the start and after now"),
        (["--unit", "48", "--until", "31/02/2030 07:00"], 1, "must look like 30/11/2026 07:00"),
        (["--unit", "48", "--for", "1h", "--until", "30/11/2030 07:00"], 2, "--for or --until"),
        (["--unit", "48", "--rule", "pm25-bad", "--for", "1h"], 2, "one of --unit, --device"),
        (["--for", "1h"], 2, "one of --unit, --device"),
    ]
    for args, expected_code, message in cases:
        code, _, err = run(sqlite_url, *base, *args)
        assert (code, message in " ".join(err.split())) == (expected_code, True), (args, err)
    actions = AlertActions(sqlite_engine)
    assert actions.recent_silences() == []
    assert actions.audit() == []


def test_until_is_local_time_stored_as_utc(url: str, engine: Engine) -> None:
    local = (datetime.now(ICT) + timedelta(days=2)).replace(
        hour=7, minute=0, second=0, microsecond=0
    )
    shown = local.strftime("%d/%m/%Y %H:%M")
    code, out, err = run(
        url,
        "silence",
        "--device",
        "aq-0001",
        "--until",
        shown,
        "--reason",
        "thay pin",
        "--by",
        "tranthib",
    )
    assert code == 0, err
    assert f"→ {shown}" in out
    (silence,) = AlertActions(engine).active_silences()
    assert silence.ends_at == local.astimezone(UTC)
    assert silence.ends_at.hour == 0  # 07:00 in Asia/Ho_Chi_Minh is midnight UTC
    assert local_time("30/11/2026 07:00", ICT) == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert local_time("2026-11-30  07:00", ICT) == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


def test_roster_on_duty_and_the_duty_chain(sqlite_url: str, tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "unit,name,email,lang,days,start,end\n"
        "20194,Nguyễn Văn An,an@haivan.gov.vn,vi,mon-fri,07:00,19:00\n"
        "20194,Trần Thị Bình,binh@haivan.gov.vn,vi,mon-sun,19:00,07:00\n"
        "48,Lê Văn Cường,cuong@danang.gov.vn,en,mon-sun,00:00,00:00\n",
        encoding="utf-8",
    )
    env = {"CITYOPS_ALERTS__ROSTER_FILE": str(roster)}
    # Monday 2 November 2026, 02:00 local: Sunday's night shift.
    code, out, err = run(sqlite_url, "roster", "--at", "02/11/2026 02:00", env=env)
    assert code == 0, err
    assert "on duty at 02/11/2026 02:00" in out
    lines = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "Trần Thị Bình <binh@haivan.gov.vn>" in lines["20194"]
    assert "Nguyễn Văn An" not in lines["20194"]
    assert "Lê Văn Cường" in lines["48"]

    code, out, err = run(
        sqlite_url, "roster", "--at", "02/11/2026 10:00", "--unit", "20194", env=env
    )
    assert code == 0, err
    chain = out.split("duty chain of 20194 (Phường Hải Vân, Thành phố Đà Nẵng):\n")[1]
    assert chain.splitlines() == [
        "  0. Phường Hải Vân, Thành phố Đà Nẵng: Nguyễn Văn An <an@haivan.gov.vn>",
        "  1. Thành phố Đà Nẵng: Lê Văn Cường <cuong@danang.gov.vn>",
        "  2. Trực ban: Trực ban <truc-ban@example.gov.vn>",
    ]

    roster.write_text("unit,name,email,days,start,end\n99,X,x@x.vn,mon,07:00,19:00\n")
    code, _, err = run(sqlite_url, "roster", env=env)
    assert code == 2
    assert "line 2, unit must be the code of a unit" in err
    code, _, err = run(sqlite_url, "roster", "--at", "tomorrow")
    assert code == 1
    assert "must look like 30/11/2026 07:00" in err


def test_outbox_counts_and_failed_emails(sqlite_url: str, sqlite_engine: Engine) -> None:
    code, out, _ = run(sqlite_url, "outbox")
    assert (code, out.strip()) == (0, "chưa có thư / no e-mails yet (the alert engine has not run)")
    AlertRepository(sqlite_engine).create_schema()
    outbox = Outbox(sqlite_engine)
    now = datetime.now(UTC)
    person = Person(email="an@haivan.gov.vn", name="Nguyễn Văn An")
    for number in (1, 2):
        email = Notification(
            recipients=(person.email,),
            subject=f"[CẢNH BÁO][critical] PM2.5 — {HAI_VAN_NAME} ({number})",
            body_text="…",
            headers={"Message-ID": f"<{number}@cityops>"},
        )
        outbox.queue_email(person, email, [], now=now)
    (claimed,) = outbox.claim_due("cli-test", now=now, lease_s=30, limit=1)
    outbox.mark_failed(claimed.id, now=now, error="550 5.1.1 no such user")
    code, out, err = run(sqlite_url, "outbox", "--failed")
    assert code == 0, err
    counts = {line.rsplit(None, 1)[0]: line.rsplit(None, 1)[1] for line in out.splitlines()[1:6]}
    assert counts["chờ gửi/waiting"] == "1"
    assert counts["lỗi/failed"] == "1"
    assert "→ an@haivan.gov.vn" in out
    assert "lỗi/error: 550 5.1.1 no such user" in out
    assert f"{HAI_VAN_NAME} (1)" in out
    assert f"{HAI_VAN_NAME} (2)" not in out
