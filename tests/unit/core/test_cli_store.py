"""`cityops store setup` without InfluxDB: SQLite needs nothing; what the command prints.
The InfluxDB path runs against a real influxd with auth in
tests/integration/test_deploy_servers.py."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from core.cli_store import describe_setup, store_app
from core.store.influx_setup import Policy, SetupState


def test_sqlite_needs_no_setup(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("store:\n  backend: sqlite\n  sqlite:\n    path: ts.sqlite\n")
    done = CliRunner().invoke(store_app, ["setup", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert "nothing to set up" in done.output


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("store:\n  retention:\n    raw_days: 400\n    rollup_days: 30\n")
    done = CliRunner().invoke(store_app, ["setup", "--config", str(config)])
    assert done.exit_code == 2
    assert "rollup_days" in done.output


def test_the_setup_is_printed_policy_by_policy() -> None:
    assert describe_setup(SetupState("cityops", False, (), ())) == [
        "Cơ sở dữ liệu / database cityops: chưa có / missing"
    ]
    state = SetupState(
        "cityops",
        True,
        (Policy("autogen", "0s", False), Policy("raw", "720h0m0s", True)),
        (),
    )
    assert describe_setup(state) == [
        "Cơ sở dữ liệu / database cityops: có / exists",
        "  chính sách lưu / retention policy autogen: mãi mãi / forever",
        "  chính sách lưu / retention policy raw: 720h0m0s (mặc định / default)",
        "  truy vấn liên tục / continuous query cityops_rollup_1h: không có / none",
    ]
