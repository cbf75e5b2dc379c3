"""`cityops report weekly` end to end: the typer app on a real SqliteStore with a few
readings and a SQLite state database; the files are read back with openpyxl and pdftotext."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from core.cli import app
from core.store.sqlite import SqliteStore
from core.types import Point
from tests.fixtures.signin import TEST_SECRET_ENV

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")
ICT = ZoneInfo("Asia/Ho_Chi_Minh")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ICT).astimezone(UTC)


def dossiers(commune: str, at: datetime, on_time: float, resolved: float) -> Point:
    tags = {"device": f"gov-{commune}", "province": "48", "commune": commune}
    return Point("dossiers", tags, {"resolved_on_time": on_time, "resolved": resolved}, at)


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    store = SqliteStore(tmp_path / "store.sqlite")
    store.write(
        [
            # W47 (16–22/11): Hải Vân 9/10, Cẩm Lệ 50/100 → Đà Nẵng 59/110 = 53.6 %.
            dossiers("20194", local(17, 9), 9, 10),
            dossiers("20260", local(18, 10), 50, 100),
            # W46: Hải Vân 7/10, Cẩm Lệ 80/100 → 87/110 = 79.1 %.
            dossiers("20194", local(10, 9), 7, 10),
            dossiers("20260", local(11, 10), 80, 100),
        ]
    )
    store.close()
    return CliRunner(
        env={
            **TEST_SECRET_ENV,
            "CITYOPS_STORE__SQLITE__PATH": str(tmp_path / "store.sqlite"),
            "CITYOPS_DATABASE__URL": f"sqlite:///{tmp_path / 'state.sqlite'}",
        }
    )


def report(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["report", "weekly", *args, "--config", CONFIG])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_writes_both_files_with_the_weeks_numbers(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = report(cli, "--week", "2026-W47", "--unit", "48", "--out", str(out))
    assert code == 0, stderr
    pdf, xlsx = out / "bao-cao-tuan-48-2026-W47.pdf", out / "bao-cao-tuan-48-2026-W47.xlsx"
    assert stdout.splitlines() == [str(pdf), str(xlsx)]
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True, timeout=30
    ).stdout.decode("utf-8")
    assert "Thành phố Đà Nẵng" in text
    assert "2026-W47" in text
    on_time = next(line for line in text.splitlines() if "đúng hạn" in line and "%" in line)
    assert "53,6 %" in on_time
    assert "79,1 %" in on_time
    hai_van = next(line for line in text.splitlines() if "Hải Vân" in line and "20194" in line)
    assert "90,0 %" in hai_van
    sheet = load_workbook(xlsx)["Chỉ số"]
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=8)}
    on_time_row = next(row for label, row in rows.items() if label and "đúng hạn" in label)
    assert on_time_row[2].value == pytest.approx(59 / 110)
    assert on_time_row[3].value == pytest.approx(87 / 110)


def test_english_file_names(cli: CliRunner, tmp_path: Path) -> None:
    code, stdout, stderr = report(
        cli, "--week", "2026-W47", "--unit", "20194", "--lang", "en", "--out", str(tmp_path)
    )
    assert code == 0, stderr
    assert stdout.splitlines()[0].endswith("weekly-review-20194-2026-W47.pdf")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--week", "2026-47", "--unit", "48"], "'2026-47'"),
        (["--week", "2025-W53", "--unit", "48"], "'2025-W53'"),
        (["--week", "2026-W47", "--unit", "99999"], "'99999'"),
        (["--week", "2026-W47", "--unit", "48", "--lang", "fr"], "'fr'"),
    ],
)
def test_bad_values_exit_2_naming_them(
    cli: CliRunner, tmp_path: Path, args: list[str], named: str
) -> None:
    code, _stdout, stderr = report(cli, *args, "--out", str(tmp_path / "never"))
    assert code == 2
    assert named in stderr
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------- the download routes


@pytest.fixture
def review_client(tmp_path: Path, cli: CliRunner):  # type: ignore[no-untyped-def]
    """A Flask server with the two routes, a Hải Vân leader signed in (the gate's part:
    ``g.cityops_access``), on the readings of ``cli``'s store."""
    from types import SimpleNamespace

    from flask import Flask, g

    from alerts.repository import AlertRepository
    from core.db import make_engine
    from core.settings import load_settings
    from dashboard.access import Access
    from dashboard.review_exports import mount_review_exports
    from layers.levels import Hierarchy
    from tests.conftest import FakeClock

    settings = load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV)
    hierarchy = Hierarchy.from_csv(
        settings.hierarchy.levels, settings.path(settings.hierarchy.units_file)
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}", tmp_path)
    AlertRepository(engine).create_schema()
    store = SqliteStore(tmp_path / "store.sqlite")
    ctx = SimpleNamespace(
        settings=settings,
        data=SimpleNamespace(store=store),
        hierarchy=hierarchy,
        state_engine=engine,
        clock=FakeClock(local(24, 9)),  # Tuesday of W48: last week is W47
        tz=ICT,
    )
    server = Flask(__name__)

    @server.before_request
    def sign_in() -> None:
        g.cityops_access = Access(hierarchy, ["20194"], role="leader", username="bi.thu")

    mount_review_exports(ctx, server, "/")  # type: ignore[arg-type]
    yield server.test_client()
    store.close()


def test_review_downloads_within_access(review_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    answer = review_client.get("/export/review.xlsx?unit=20194")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="bao-cao-tuan-20194-2026-W47.xlsx"'
    )
    path = tmp_path / "review.xlsx"
    path.write_bytes(answer.data)
    sheet = load_workbook(path)["Chỉ số"]
    assert sheet["B2"].value == "Phường Hải Vân, Thành phố Đà Nẵng"
    on_time = next(row for row in sheet.iter_rows(min_row=8) if "đúng hạn" in row[0].value)
    assert on_time[2].value == pytest.approx(0.9)

    answer = review_client.get("/export/review.pdf?unit=20194&week=2026-W46&lang=en")
    assert answer.status_code == 200
    assert answer.mimetype == "application/pdf"
    assert answer.data.startswith(b"%PDF-")
    assert "weekly-review-20194-2026-W46.pdf" in answer.headers["Content-Disposition"]

    # The city and a neighbour are outside this leader's access: as if they did not exist.
    assert review_client.get("/export/review.pdf?unit=48").status_code == 404
    assert review_client.get("/export/review.pdf?unit=20260").status_code == 404
    bad = review_client.get("/export/review.pdf?unit=20194&week=2026-47")
    assert bad.status_code == 400
    assert "'2026-47'" in bad.get_data(as_text=True)


def test_review_download_in_the_users_language(review_client) -> None:  # type: ignore[no-untyped-def]
    from dashboard.auth import LANG_COOKIE

    review_client.set_cookie(LANG_COOKIE, "en")
    answer = review_client.get("/export/review.xlsx?unit=20194")
    assert answer.status_code == 200
    assert "weekly-review-20194-2026-W47.xlsx" in answer.headers["Content-Disposition"]
