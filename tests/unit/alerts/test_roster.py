"""The duty roster (alerts/roster.py): shifts judged in Asia/Ho_Chi_Minh with times given
in UTC, the roster CSV and its errors, and the duty chain (unit → units above → desk).
Week of Monday 2026-11-02; ICT is UTC+7."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.facts import Person
from alerts.roster import Roster
from core.errors import ConfigError
from core.settings import RosterEntry, Settings, parse_settings
from core.settings_base import Label
from layers.levels import Hierarchy

REPO = Path(__file__).resolve().parents[3]
ICT = ZoneInfo("Asia/Ho_Chi_Minh")
HAI_VAN, LIEN_CHIEU, DA_NANG = "20194", "20197", "48"
KNOWN = {HAI_VAN, LIEN_CHIEU, DA_NANG}


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of November 2026 given in ICT, returned in UTC as the roster receives it."""
    return datetime(2026, 11, day, hour, minute, tzinfo=ICT).astimezone(UTC)


def entry(name: str, email: str, days: str, start: str, end: str, unit: str = HAI_VAN) -> Any:
    return RosterEntry.model_validate(
        {"unit": unit, "name": name, "email": email, "days": days, "start": start, "end": end}
    )


def names(roster: Roster, at: datetime, unit: str = HAI_VAN) -> list[str]:
    return [person.name for person in roster.on_duty(unit, at)]


# --------------------------------------------------------------------------- shifts


def test_a_sunday_night_shift_covers_monday_until_seven_not_at_seven() -> None:
    roster = Roster([entry("Đêm", "dem@x.vn", "sun", "19:00", "07:00")], ICT)
    cases = [
        (local(1, 18, 59), []),  # Sunday before the shift
        (local(1, 19, 0), ["Đêm"]),  # start inclusive
        (local(2, 0, 0), ["Đêm"]),  # local midnight: Monday, still Sunday's shift
        (local(2, 6, 59), ["Đêm"]),
        (local(2, 7, 0), []),  # end exclusive
        (local(8, 23, 0), ["Đêm"]),  # the next Sunday
        (local(9, 3, 0), ["Đêm"]),  # ... wrapping into the next Monday
    ]
    assert [(at, names(roster, at)) for at, _ in cases] == cases


def test_a_monday_night_shift_does_not_cover_early_monday() -> None:
    roster = Roster([entry("Đêm", "dem@x.vn", "mon", "19:00", "07:00")], ICT)
    assert names(roster, local(2, 3, 0)) == []  # that would be Sunday's shift
    assert names(roster, local(3, 6, 59)) == ["Đêm"]  # Tuesday 06:59
    assert names(roster, local(3, 7, 0)) == []


def test_a_weekday_day_shift_is_not_on_saturday() -> None:
    roster = Roster([entry("Ngày", "ngay@x.vn", "mon-fri", "07:00", "19:00")], ICT)
    assert names(roster, local(6, 10, 0)) == ["Ngày"]  # Friday 10:00
    assert names(roster, local(6, 18, 59)) == ["Ngày"]
    assert names(roster, local(6, 19, 0)) == []
    assert names(roster, local(7, 10, 0)) == []  # Saturday 10:00
    assert names(roster, local(2, 6, 59)) == []  # Monday before the shift


def test_start_equal_to_end_is_a_24_hour_shift() -> None:
    roster = Roster([entry("Cả ngày", "ca@x.vn", "wed", "08:00", "08:00")], ICT)
    assert names(roster, local(4, 7, 59)) == []
    assert names(roster, local(4, 8, 0)) == ["Cả ngày"]
    assert names(roster, local(5, 7, 59)) == ["Cả ngày"]  # Thursday 07:59
    assert names(roster, local(5, 8, 0)) == []
    whole_week = Roster([entry("Tuần", "tuan@x.vn", "mon-sun", "00:00", "00:00")], ICT)
    assert all(names(whole_week, local(2, 0) + timedelta(minutes=m)) for m in range(0, 10080, 7))


def test_shifts_are_judged_in_ict_not_utc() -> None:
    roster = Roster(
        [
            entry("Sáng thứ Hai", "a@x.vn", "mon", "06:00", "12:00"),
            entry("Chủ nhật", "b@x.vn", "sun", "18:00", "23:59"),
        ],
        ICT,
    )
    sunday_2330_utc = datetime(2026, 11, 1, 23, 30, tzinfo=UTC)  # Monday 06:30 ICT
    assert names(roster, sunday_2330_utc) == ["Sáng thứ Hai"]
    # The same moment given in another zone is the same moment.
    assert names(roster, sunday_2330_utc.astimezone(ZoneInfo("America/New_York"))) == [
        "Sáng thứ Hai"
    ]
    with pytest.raises(ValueError, match="timezone-aware"):
        roster.on_duty(HAI_VAN, datetime(2026, 11, 2, 6, 30))


def test_on_duty_is_sorted_by_name_with_each_address_once() -> None:
    roster = Roster(
        [
            entry("Vũ Hà", "ha@x.vn", "mon-sun", "00:00", "00:00"),
            entry("An", "an@x.vn", "mon-fri", "07:00", "19:00"),
            entry("An", "AN@x.vn", "mon-sun", "00:00", "00:00"),  # the same person twice
            entry("Bảo", "bao@x.vn", "mon-sun", "00:00", "00:00", unit=DA_NANG),
        ],
        ICT,
    )
    people = roster.on_duty(HAI_VAN, local(3, 10))
    assert [person.name for person in people] == ["An", "Vũ Hà"]
    assert people[1] == Person(email="ha@x.vn", name="Vũ Hà", lang="vi", unit_code=HAI_VAN)
    assert [e.name for e in roster.people_for(HAI_VAN)] == ["An", "An", "Vũ Hà"]
    assert len(roster.entries()) == 4


# --------------------------------------------------------------------------- loading


def settings_with(
    tmp_path: Path, csv_text: str | None, roster: list[Any] | None = None
) -> Settings:
    alerts: dict[str, Any] = {"roster": roster or []}
    if csv_text is not None:
        (tmp_path / "roster.csv").write_text(csv_text, encoding="utf-8")
        alerts["roster_file"] = "roster.csv"
    return parse_settings({"alerts": alerts}, environ={}, base_dir=tmp_path)


def load(settings: Settings) -> Roster:
    return Roster.from_settings(settings, known_unit=KNOWN.__contains__)


def test_config_entries_and_csv_rows_are_one_roster(tmp_path: Path) -> None:
    csv_text = (
        "\ufeffUnit, Name ,email,days,start,end\r\n"  # BOM, no lang column, loose header
        "20194,Trần Thị Bình,binh@x.vn,sat;sun,07:00,19:00\r\n"
        "\r\n"
        '48,"Lê Minh Châu",chau@x.vn,"mon-fri,sun",19:00,07:00\r\n'
    )
    config_entry = {"unit": HAI_VAN, "name": "An", "email": "an@x.vn", "lang": "en"}
    roster = load(settings_with(tmp_path, csv_text, [config_entry]))
    assert [(e.unit, e.name, e.lang, e.days) for e in roster.entries()] == [
        (HAI_VAN, "An", "en", (0, 1, 2, 3, 4, 5, 6)),
        (HAI_VAN, "Trần Thị Bình", "vi", (5, 6)),
        (DA_NANG, "Lê Minh Châu", "vi", (0, 1, 2, 3, 4, 6)),
    ]
    assert names(roster, local(7, 10)) == ["An", "Trần Thị Bình"]  # Saturday
    assert names(roster, local(8, 3), DA_NANG) == []  # Saturday night: not named
    assert names(roster, local(9, 3), DA_NANG) == ["Lê Minh Châu"]  # Sunday night


def test_the_example_roster_loads_against_the_real_hierarchy() -> None:
    settings = parse_settings(
        {"alerts": {"roster_file": "config/roster.example.csv"}}, environ={}, base_dir=REPO
    )
    hierarchy = Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )
    roster = Roster.from_settings(settings, known_unit=lambda code: hierarchy.get(code) is not None)
    assert {e.unit for e in roster.entries()} == {HAI_VAN, DA_NANG}
    day, night = local(3, 10), local(3, 22)  # a Tuesday
    assert len(roster.on_duty(HAI_VAN, day)) == len(roster.on_duty(HAI_VAN, night)) == 1
    assert roster.on_duty(HAI_VAN, day) != roster.on_duty(HAI_VAN, night)
    # The city's officer works 24-hour shifts from 07:00, every day.
    assert all(roster.on_duty(DA_NANG, local(2, 7) + timedelta(hours=h)) for h in range(168))


HEADER = "unit,name,email,lang,days,start,end\n"
GOOD = "20194,An,an@x.vn,vi,mon-fri,07:00,19:00\n"


@pytest.mark.parametrize(
    ("bad_line", "where", "value"),
    [
        ("20194,Bình,binh-at-x.vn,vi,mon,07:00,19:00", "line 4, email", "binh-at-x.vn"),
        ("99999,Bình,binh@x.vn,vi,mon,07:00,19:00", "line 4, unit", "99999"),
        ("4,Bình,binh@x.vn,vi,mon,07:00,19:00", "leading zeros", "4"),
        ("20194,,binh@x.vn,vi,mon,07:00,19:00", "line 4, name", ""),
        ("20194,Bình,binh@x.vn,fr,mon,07:00,19:00", "line 4, lang", "fr"),
        ("20194,Bình,binh@x.vn,vi,mon-fry,07:00,19:00", "line 4, days", "mon-fry"),
        ("20194,Bình,binh@x.vn,vi,,07:00,19:00", "line 4, days", ""),
        ("20194,Bình,binh@x.vn,vi,mon,24:00,19:00", "line 4, start", "24:00"),
        ("20194,Bình,binh@x.vn,vi,mon,07:00,7h", "line 4, end", "7h"),
        ("20194,Bình,binh@x.vn,vi,mon,07:00", "line 4 must have 7 fields", "binh@x.vn"),
    ],
)
def test_a_bad_csv_row_names_its_line_column_and_value(
    tmp_path: Path, bad_line: str, where: str, value: str
) -> None:
    settings = settings_with(tmp_path, HEADER + GOOD + GOOD + bad_line + "\n" + GOOD)
    with pytest.raises(ConfigError) as caught:
        load(settings)
    assert caught.value.key == "alerts.roster_file"
    assert where in str(caught.value)
    assert value in str(caught.value.value)


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("unit,name,email,lang,days,start", "missing end"),
        ("unit,name,mail,lang,days,start,end", "only the columns"),
        ("unit,name,email,email,days,start,end", "each column once"),
    ],
)
def test_a_bad_header_is_refused(tmp_path: Path, header: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"line 1, header .*{problem}"):
        load(settings_with(tmp_path, header + "\n" + GOOD))


def test_an_empty_or_missing_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="header"):
        load(settings_with(tmp_path, ""))
    settings = parse_settings(
        {"alerts": {"roster_file": "nowhere/roster.csv"}}, environ={}, base_dir=tmp_path
    )
    with pytest.raises(ConfigError) as caught:
        load(settings)
    assert caught.value.key == "alerts.roster_file"
    assert caught.value.value == str(tmp_path / "nowhere" / "roster.csv")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "roster.csv").write_bytes(
        (HEADER + "20194,Bình,b@x.vn,vi,mon,07:00,19:00\n").encode(
            "latin-1"
        )  # what a spreadsheet may save
    )
    settings = parse_settings(
        {"alerts": {"roster_file": "roster.csv"}}, environ={}, base_dir=tmp_path
    )
    with pytest.raises(ConfigError, match="UTF-8"):
        load(settings)


def test_a_config_entry_of_an_unknown_unit_names_its_index(tmp_path: Path) -> None:
    roster = [
        {"unit": HAI_VAN, "name": "An", "email": "an@x.vn"},
        {"unit": "20195", "name": "Bình", "email": "binh@x.vn"},
    ]
    with pytest.raises(ConfigError) as caught:
        load(settings_with(tmp_path, None, roster))
    assert caught.value.key == "alerts.roster.1.unit"
    assert caught.value.value == "20195"


# --------------------------------------------------------------------------- chain


def unit_name(code: str) -> Label:
    return Label(vi=f"Đơn vị {code}", en=f"Unit {code}")


DESK = ["truc-ban@x.vn"]


def chain_roster() -> Roster:
    return Roster(
        [
            entry("An", "an@x.vn", "mon-fri", "07:00", "19:00"),  # Hải Vân, weekdays
            entry("Bình", "binh@x.vn", "mon-sun", "00:00", "00:00", unit=DA_NANG),
            entry("An", "an@x.vn", "mon-sun", "00:00", "00:00", unit=DA_NANG),  # also province
            entry("Cường", "cuong@x.vn", "sat", "07:00", "19:00", unit=LIEN_CHIEU),
        ],
        ICT,
    )


def summary(steps: list[Any]) -> list[tuple[int, str | None, list[str]]]:
    return [(s.step, s.unit_code, [p.email for p in s.people]) for s in steps]


def test_the_chain_climbs_from_the_unit_to_the_province_to_the_desk() -> None:
    steps = chain_roster().chain(HAI_VAN, [DA_NANG], local(3, 10), desk=DESK, unit_name=unit_name)
    # An is on duty for both: told once, in the first step.
    assert summary(steps) == [
        (0, HAI_VAN, ["an@x.vn"]),
        (1, DA_NANG, ["binh@x.vn"]),
        (2, None, ["truc-ban@x.vn"]),
    ]
    assert steps[0].unit_name == unit_name(HAI_VAN)
    assert steps[2].unit_name == Label(vi="Trực ban", en="Duty desk")
    assert steps[2].people == (Person(email="truc-ban@x.vn", name="Trực ban"),)
    assert steps[2].people[0].lang == "vi"
    assert steps[2].people[0].unit_code is None


def test_nobody_on_duty_at_the_unit_starts_the_chain_at_the_province() -> None:
    saturday = local(7, 10)
    steps = chain_roster().chain(HAI_VAN, [DA_NANG], saturday, desk=DESK, unit_name=unit_name)
    assert summary(steps) == [
        (0, DA_NANG, ["an@x.vn", "binh@x.vn"]),
        (1, None, ["truc-ban@x.vn"]),
    ]
    assert steps[0].unit_name == unit_name(DA_NANG)


def test_a_parent_nobody_covers_is_skipped_and_no_desk_means_no_desk_step() -> None:
    # A device alert: its unit is Liên Chiểu; pretend a middle level with no roster.
    roster = chain_roster()
    steps = roster.chain(LIEN_CHIEU, ["99", DA_NANG], local(7, 10), desk=[], unit_name=unit_name)
    assert summary(steps) == [
        (0, LIEN_CHIEU, ["cuong@x.vn"]),
        (1, DA_NANG, ["an@x.vn", "binh@x.vn"]),
    ]


def test_the_desk_is_left_out_when_its_address_was_already_told() -> None:
    steps = chain_roster().chain(
        HAI_VAN, [DA_NANG], local(3, 10), desk=["BINH@x.vn", "desk@x.vn"], unit_name=unit_name
    )
    assert summary(steps)[-1] == (2, None, ["desk@x.vn"])


def test_nobody_anywhere_and_no_desk_is_an_empty_chain() -> None:
    roster = chain_roster()
    assert roster.chain(LIEN_CHIEU, [], local(3, 10), desk=[], unit_name=unit_name) == []
    only_desk = roster.chain(LIEN_CHIEU, [], local(3, 10), desk=DESK, unit_name=unit_name)
    assert summary(only_desk) == [(0, None, ["truc-ban@x.vn"])]
