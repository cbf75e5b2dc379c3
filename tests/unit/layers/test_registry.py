"""The device registry: CSV in and out, devices placed in their units, clear errors."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pytest

from core.errors import ConfigError
from layers.geography import Geography
from layers.registry import Device, place_device, read_registry, write_registry

HEADER = "device_id,kind,name,lon,lat\n"


def test_round_trip_on_the_shipped_map(danang: Geography, tmp_path: Path) -> None:
    path = tmp_path / "devices" / "registry.csv"
    devices = [
        place_device("aq-0001", "air", "Trạm Hải Châu, số 1", 108.2208, 16.0678, danang),
        place_device("wl-sea", "water", "Phao biển", 109.5, 16.0, danang),
        place_device("aq-0002", "air", "Precise", 108.22081234567891, 16.067812345678, danang),
    ]
    write_registry(path, devices)
    assert [p.name for p in path.parent.iterdir()] == ["registry.csv"]  # no temporary left
    loaded = read_registry(path, danang)
    assert loaded == {device.device_id: device for device in devices}
    assert loaded["aq-0001"] == Device(
        "aq-0001", "air", "Trạm Hải Châu, số 1", 108.2208, 16.0678, "20242",
        {"province": "48", "commune": "20242"},
    )  # fmt: skip
    assert loaded["wl-sea"].unit_code is None
    assert loaded["wl-sea"].tags == {}


def test_three_level_tags(three_level: Geography, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(HEADER + "aq-1,air,A,108.105,16.005\naq-2,air,B,108.135,16.005\n")
    devices = read_registry(path, three_level)
    assert devices["aq-1"].tags == {"province": "48", "district": "490", "commune": "20194"}
    assert devices["aq-2"].tags == {"province": "48", "district": "492", "commune": "20242"}
    assert devices["aq-2"].unit_code == "20242"


def test_device_outside_every_unit_is_kept_and_logged(
    three_level: Geography, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(HEADER + "far-1,air,Far,109.0,17.0\n")
    with caplog.at_level(logging.WARNING, logger="cityops.layers"):
        devices = read_registry(path, three_level)
    assert devices["far-1"].unit_code is None
    assert [r.getMessage() for r in caplog.records] == [
        "device far-1 at 109.00000,17.00000 lies outside every unit"
    ]


def test_names_are_read_as_nfc(three_level: Geography, tmp_path: Path) -> None:
    path = tmp_path / "registry.csv"
    decomposed = unicodedata.normalize("NFD", "Trạm Hải Châu")
    path.write_text(HEADER + f"aq-1,air,{decomposed},108.105,16.005\n", encoding="utf-8")
    assert read_registry(path, three_level)["aq-1"].name == "Trạm Hải Châu"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            "aq-1,air,A,108.1,16.0\naq-1,air,B,108.1,16.0\n",
            ":3 device_id must be unique (also line 2): 'aq-1'",
        ),
        ("aq 1,air,A,108.1,16.0\n", ":2 device_id must be 1-64 of A-Z a-z 0-9 _ . -: 'aq 1'"),
        (",air,A,108.1,16.0\n", ":2 device_id must be"),
        ("aq-1,Air,A,108.1,16.0\n", ":2 kind must be a lower-case word such as air: 'Air'"),
        ("aq-1,air,A,east,16.0\n", ":2 lon must be a number: 'east'"),
        ("aq-1,air,A,108.1,\n", ":2 lat must be a number: ''"),
        ("aq-1,air,A,108.1,91\n", ":2 lat must be a number from -90 to 90: '91'"),
        ("aq-1,air,A,nan,16.0\n", ":2 lon must be a number from -180 to 180: 'nan'"),
        ("aq-1,air,A\n", ":2 must have 5 comma-separated values: 'aq-1,air,A'"),
        ("aq-1,air,Trạm A, B,108.1,16.0\n", ":2 must have 5 comma-separated values (quote"),
        (
            "\naq-1,air,A,108.1,16.0\n\naq-1,air,A,108.1,16.0\n",  # blank lines count
            ":5 device_id must be unique (also line 3)",
        ),
    ],
)
def test_bad_rows_name_file_line_column_and_value(
    three_level: Geography, tmp_path: Path, rows: str, expected: str
) -> None:
    path = tmp_path / "registry.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_registry(path, three_level)
    assert f"devices.registry {path}{expected}" in str(caught.value)


def test_missing_file_or_columns(three_level: Geography, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must name an existing CSV file"):
        read_registry(tmp_path / "none.csv", three_level)
    path = tmp_path / "registry.csv"
    path.write_text("device_id,kind,lon,lat\naq-1,air,108.1,16.0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must have the columns"):
        read_registry(path, three_level)
