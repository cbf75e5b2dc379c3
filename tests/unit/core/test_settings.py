"""Settings validation: every error names the key, the bad value and what is allowed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.errors import ConfigError
from core.settings import check_settings, load_settings, parse_settings

REPO = Path(__file__).resolve().parents[3]


def shipped() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_shipped_config_is_valid_and_complete() -> None:
    settings = load_settings(REPO / "config.yaml", environ={})
    assert settings.hierarchy.level_names == ("province", "commune")
    assert settings.site.timezone == "Asia/Ho_Chi_Minh"
    pm25 = settings.metrics["pm25"]
    assert [band.upto for band in pm25.bands] == [25, 50, 80, 150, 250, None]
    assert pm25.bands[0].label.vi == "Tốt"
    assert pm25.ref.measurement == "air"
    assert settings.path("layers/data/admin_codes_2025.csv").exists()


def test_environment_overrides_nested_keys() -> None:
    settings = parse_settings(
        shipped(),
        environ={
            "CITYOPS_BROKER__PORT": "1884",
            "CITYOPS_STORE__BACKEND": "influxdb",
            "CITYOPS_STORE__INFLUXDB__URL": "http://127.0.0.1:9999",
            "CITYOPS_SMTP__PASSWORD": "s3cret: with colon",
            "CITYOPS_ALERTS__RULES__0__THRESHOLD": "90",
            "UNRELATED": "x",
        },
    )
    assert settings.broker.port == 1884
    assert settings.store.backend == "influxdb"
    assert settings.store.influxdb.url == "http://127.0.0.1:9999"
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "s3cret: with colon"
    assert settings.alerts.rules[0].threshold == 90


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"CITYOPS_BROKER__PORT": "70000"}, "broker.port must be at most 65535: 70000"),
        ({"CITYOPS_INGEST__QOS": "3"}, "ingest.qos must be 0, 1 or 2: 3"),
        (
            {"CITYOPS_STORE__BACKEND": "mongo"},
            "store.backend must be 'sqlite' or 'influxdb': 'mongo'",
        ),
        ({"CITYOPS_INGEST__BATCH_SIZE": "0"}, "ingest.batch_size must be at least 1: 0"),
        ({"CITYOPS_DATABASE__URL": "mysql://x"}, "database.url must start with sqlite://"),
        ({"CITYOPS_SITE__TIMEZONE": "Mars/Base"}, "site.timezone must be an IANA time zone"),
        ({"CITYOPS_BROKER__PROT": "1"}, "broker.prot is not a known setting"),
        ({"CITYOPS_ALERTS__RULES__0__METRIC": "pm1"}, "alerts.rules.0.metric must be one of"),
        ({"CITYOPS_ALERTS__RULES__0__LEVEL": "district"}, "alerts.rules.0.level must be one of"),
        ({"CITYOPS_DASHBOARD__DEFAULT_METRIC": "nox"}, "dashboard.default_metric must be one of"),
        ({"CITYOPS_LAYERS__MAP_LEVEL": "ward"}, "layers.map_level must be one of"),
        (
            {"CITYOPS_HIERARCHY__HISTORY__REFORM_DATE": "1751328000"},  # pydantic: seconds
            "hierarchy.history.reform_date must be a day written YYYY-MM-DD, such as "
            "2025-07-01: 1751328000",
        ),
    ],
)
def test_errors_name_key_value_and_allowed(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(shipped(), environ=environ)
    assert expected in str(caught.value)


def test_secrets_in_the_file_are_refused_with_the_variable_to_use() -> None:
    raw = shipped()
    raw["smtp"]["password"] = "hunter2"
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, environ={})
    message = str(caught.value)
    assert "CITYOPS_SMTP__PASSWORD" in message
    assert "hunter2" not in message


def test_bands_must_increase_and_end_open() -> None:
    raw = shipped()
    raw["metrics"]["pm25"]["bands"][1]["upto"] = 10
    with pytest.raises(ConfigError, match=r"metrics\.pm25\.bands must increase"):
        parse_settings(raw, environ={})
    raw = shipped()
    raw["metrics"]["pm25"]["bands"][-1]["upto"] = 999
    with pytest.raises(ConfigError, match=r"metrics\.pm25\.bands must end with one last band"):
        parse_settings(raw, environ={})


def test_influx_v2_needs_token_org_bucket() -> None:
    with pytest.raises(ConfigError, match=r"store\.influxdb\.token must be set"):
        parse_settings(
            shipped(),
            environ={"CITYOPS_STORE__BACKEND": "influxdb", "CITYOPS_STORE__INFLUXDB__API": "v2"},
        )


def test_three_level_hierarchy_is_configuration() -> None:
    raw = shipped()
    raw["hierarchy"]["levels"] = [
        {"name": "province", "code_length": 2, "label": {"vi": "Tỉnh", "en": "Province"}},
        {"name": "district", "code_length": 3, "label": {"vi": "Huyện", "en": "District"}},
        {"name": "commune", "code_length": 5, "label": {"vi": "Xã", "en": "Commune"}},
    ]
    settings = parse_settings(raw, environ={})
    assert settings.hierarchy.level_names == ("province", "district", "commune")
    raw["hierarchy"]["levels"][1]["name"] = "province"
    with pytest.raises(ConfigError, match=r"hierarchy\.levels must have unique level names"):
        parse_settings(raw, environ={})


def test_history_mapping_reform_date_and_off() -> None:
    history = parse_settings(shipped(), environ={}).hierarchy.history
    assert history.mapping_file == "layers/data/commune_mapping_pre2025_to_2025.csv"
    assert history.reform_start == datetime(2025, 6, 30, 17, 0, tzinfo=UTC)  # 00:00 in Hà Nội
    raw = shipped()
    raw["hierarchy"]["history"] = {"mapping_file": None, "reform_date": "2025-08-01"}
    history = parse_settings(raw, environ={}).hierarchy.history
    assert history.mapping_file is None
    assert history.reform_start == datetime(2025, 7, 31, 17, 0, tzinfo=UTC)
    for bad, shown in [("2025/07/01", "'2025/07/01'"), ("2025-02-30", "'2025-02-30'")]:
        raw["hierarchy"]["history"] = {"reform_date": bad}
        with pytest.raises(ConfigError) as caught:
            parse_settings(raw, environ={})
        assert str(caught.value) == (
            "hierarchy.history.reform_date must be a day written YYYY-MM-DD, "
            f"such as 2025-07-01: {shown}"
        )
    raw["hierarchy"]["history"] = {"mapping_file": " "}
    with pytest.raises(ConfigError, match=r"hierarchy\.history\.mapping_file must be the path"):
        parse_settings(raw, environ={})


def test_check_settings_lists_every_problem(tmp_path: Path) -> None:
    bad = shipped()
    bad["broker"]["port"] = -1
    bad["ingest"]["qos"] = 5
    bad["dashboard"]["colour"] = "red"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    problems = [str(problem) for problem in check_settings(path, environ={})]
    assert len(problems) == 3
    assert any(p.startswith("broker.port must be at least 0: -1") for p in problems)
    assert any(p.startswith("ingest.qos") for p in problems)
    assert any(p.startswith("dashboard.colour is not a known setting") for p in problems)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    assert "must name an existing YAML file" in str(check_settings(tmp_path / "nope.yaml")[0])
    broken = tmp_path / "broken.yaml"
    broken.write_text("broker: [unclosed\n", encoding="utf-8")
    assert "must be valid YAML" in str(check_settings(broken)[0])


def test_an_impossible_date_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hierarchy:\n  history:\n    reform_date: 2025-13-01\n", encoding="utf-8")
    assert "holds an impossible date (month must be in 1..12)" in str(check_settings(bad)[0])
    env = {"CITYOPS_HIERARCHY__HISTORY__REFORM_DATE": "2025-13-01"}
    problems = [str(p) for p in check_settings(REPO / "config.yaml", environ=env)]
    assert problems == [
        "hierarchy.history.reform_date must be a day written YYYY-MM-DD, such as 2025-07-01: "
        "'2025-13-01'"
    ]
