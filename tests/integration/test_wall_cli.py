"""`cityops wall link|links|revoke` through the typer app, on a fresh SQLite state
database: the URL printed once, only its hash stored, revoking recorded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from core.cli import app
from core.db import make_engine
from dashboard.wall_links import WallLinks, hash_token, wall_links

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")
URL = re.compile(r"^http://127\.0\.0\.1:8050/wall/phong-dieu-hanh\?key=([A-Za-z0-9_-]{43})$")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite'}"


@pytest.fixture
def cli(database_url: str) -> CliRunner:
    return CliRunner(env={"CITYOPS_DATABASE__URL": database_url})


def wall(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["wall", *args, "--config", CONFIG])
    return result.exit_code, result.stdout, result.stderr


def test_link_list_revoke(cli: CliRunner, database_url: str) -> None:
    code, out, err = wall(cli, "link", "--wall", "phong-dieu-hanh", "--by", "admin")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "wall link 1 for phong-dieu-hanh (shown once, keep it safe):"
    found = URL.match(lines[1])
    assert found is not None, lines[1]
    token = found[1]
    engine = make_engine(database_url)
    with engine.connect() as connection:
        row = connection.execute(select(wall_links)).mappings().one()
    assert row["token_hash"] == hash_token(token)
    assert token not in str(dict(row))
    link = WallLinks(engine).by_token(token)
    assert link is not None
    assert link.active

    code, out, _ = wall(cli, "links")
    assert code == 0
    header, first = out.strip().splitlines()
    assert header.split() == ["id", "wall", "created_by", "created", "revoked", "last_seen"]
    assert first.split()[:3] == ["1", "phong-dieu-hanh", "admin"]
    assert first.split()[-2:] == ["-", "-"]  # neither revoked nor seen

    code, out, _ = wall(cli, "revoke", "1", "--by", "truc-ban")
    assert (code, out.strip()) == (0, "revoked wall link 1 (phong-dieu-hanh)")
    link = WallLinks(engine).by_token(token)
    assert link is not None
    assert not link.active
    code, out, _ = wall(cli, "links")
    assert out.strip().splitlines()[1].split()[-1] == "-"
    assert len(out.strip().splitlines()[1].split()) == 8  # revoked: a date and a time
    engine.dispose()


def test_bad_input_is_named(cli: CliRunner) -> None:
    code, _, err = wall(cli, "link", "--wall", "sanh-chinh", "--by", "admin")
    assert code == 2
    assert "--wall must be one of dashboard.walls (phong-dieu-hanh): 'sanh-chinh'" in err
    code, _, err = wall(cli, "revoke", "7", "--by", "admin")
    assert code == 1
    assert "no wall link 7" in err
    code, _, err = wall(cli, "link", "--wall", "phong-dieu-hanh", "--by", " ")
    assert code == 2
    assert "--by must name who makes the link" in err
