"""`cityops users add|list|disable` through the typer app, on a fresh SQLite state database."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.db import make_engine
from dashboard.users import UserStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "config.yaml")
PASSWORD = "mật-khẩu-của-phường"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite'}"


@pytest.fixture
def cli(database_url: str) -> CliRunner:
    return CliRunner(env={"CITYOPS_DATABASE__URL": database_url, "CITYOPS_NEW_PASSWORD": PASSWORD})


def users(cli: CliRunner, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = cli.invoke(app, ["users", *args, "--config", CONFIG], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_add_list_disable(cli: CliRunner, database_url: str) -> None:
    code, out, err = users(cli, "add", "NguyenVanA", "--role", "operator", "--unit", "48")
    assert code == 0, err
    assert "added nguyenvana (operator; 48)" in out
    code, out, err = users(
        cli, "add", "tranthib", "--role", "viewer", "--unit", "20194", "--unit", "00004"
    )
    assert code == 0, err
    assert users(cli, "add", "root", "--role", "admin")[0] == 0

    code, out, _ = users(cli, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["username", "role", "units", "email", "disabled"]
    assert [line.split() for line in lines[1:]] == [
        ["nguyenvana", "operator", "48", "-", "no"],
        ["root", "admin", "*", "-", "no"],
        ["tranthib", "viewer", "00004", "20194", "-", "no"],
        ["3", "users"],
    ]

    code, out, _ = users(cli, "disable", "tranthib")
    assert (code, out.strip()) == (0, "disabled tranthib")
    code, out, _ = users(cli, "list")
    assert ["tranthib", "viewer", "00004", "20194", "-", "yes"] in [
        line.split() for line in out.splitlines()
    ]

    engine = make_engine(database_url)
    try:
        store = UserStore(engine)
        assert store.verify("nguyenvana", PASSWORD) is not None
        assert store.verify("tranthib", PASSWORD) is None  # disabled
        assert store.verify("root", "wrong password") is None
    finally:
        engine.dispose()


def test_password_is_prompted_twice_when_not_in_the_environment(database_url: str) -> None:
    cli = CliRunner(env={"CITYOPS_DATABASE__URL": database_url, "CITYOPS_NEW_PASSWORD": None})
    stdin = f"{PASSWORD}\n{PASSWORD}\n"
    code, out, err = users(cli, "add", "lethic", "--role", "leader", "--unit", "48", stdin=stdin)
    assert code == 0, err
    assert PASSWORD not in out  # hidden input is not echoed
    engine = make_engine(database_url)
    try:
        assert UserStore(engine).verify("lethic", PASSWORD) is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--role", "boss", "--unit", "48"],
            "--role must be one of admin, operator, leader, viewer: 'boss'",
        ),
        (
            ["--role", "viewer", "--unit", "99"],
            "--unit must be a unit code of layers/data/admin_codes_2025.csv: '99'",
        ),
        (["--role", "viewer", "--unit", "48", "--unit", "20195"], "'20195'"),
        (["--role", "viewer"], "a viewer needs at least one --unit CODE"),
        (
            ["--role", "viewer", "--unit", "48", "--lang", "fr"],
            "--lang must be one of vi, en: 'fr'",
        ),
    ],
)
def test_bad_values_exit_2_naming_the_value(cli: CliRunner, args: list[str], message: str) -> None:
    code, _, err = users(cli, "add", "nguyenvana", *args)
    assert code == 2
    assert message in err
    assert users(cli, "list")[1].strip() == "no users"


def test_short_password_taken_name_and_unknown_user(database_url: str, cli: CliRunner) -> None:
    short = CliRunner(env={"CITYOPS_DATABASE__URL": database_url, "CITYOPS_NEW_PASSWORD": "ngắn"})
    code, _, err = users(short, "add", "nguyenvana", "--role", "viewer", "--unit", "48")
    assert code == 2
    assert "at least 10 characters" in err
    assert users(cli, "add", "nguyenvana", "--role", "viewer", "--unit", "48")[0] == 0
    code, _, err = users(cli, "add", "nguyenvana", "--role", "viewer", "--unit", "48")
    assert code == 1
    assert "exists already: 'nguyenvana'" in err
    code, _, err = users(cli, "disable", "nobody")
    assert code == 1
    assert "no user named 'nobody'" in err
