"""The typed settings tree: ``config.yaml``, then ``CITYOPS_<SECTION>__<KEY>`` variables.

Built once, in ``core/cli.py``, by :func:`load_settings`; every service receives the
part it needs. Unknown keys are errors. Every error names the key, the bad value and
what is allowed, e.g. ``broker.port must be an integer from 1 to 65535: 70000``.
Secrets (passwords, tokens) are refused in the file and read from the environment
(``CITYOPS_SMTP__PASSWORD``, ``CITYOPS_STORE__INFLUXDB__TOKEN`` ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from core.errors import ConfigError
from core.settings_alerts import AlertsSettings as AlertsSettings
from core.settings_alerts import RosterEntry as RosterEntry
from core.settings_base import Label as Label
from core.settings_base import _Section
from core.settings_ops import Cidr, LoggingSettings
from core.settings_retention import RetentionSettings
from core.settings_rules import DEVICE_LEVEL
from core.settings_rules import AlertRule as AlertRule
from core.settings_wall import WallSettings
from core.types import AGGREGATIONS, Aggregation, MetricRef

ENV_PREFIX = "CITYOPS_"
SECRET_KEYS = ("password", "token", "secret_key")
# Vietnam's legal time: the 2025 reform took effect at midnight here, whatever site.timezone says.
REFORM_TIMEZONE = "Asia/Ho_Chi_Minh"

Port = Annotated[int, Field(ge=1, le=65535)]
PortOrZero = Annotated[int, Field(ge=0, le=65535)]  # 0 = pick a free port


class SiteSettings(_Section):
    name: Label = Label(vi="Trung tâm Điều hành Thông minh", en="Intelligent Operations Centre")
    timezone: str = "Asia/Ho_Chi_Minh"
    language: Literal["vi", "en"] = "vi"
    week_starts: Literal["monday"] = "monday"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as Asia/Ho_Chi_Minh") from exc
        return value


class BrokerSettings(_Section):
    """The MQTT broker. ``embedded: true`` starts amqtt in-process (the demo)."""

    host: str = "127.0.0.1"
    port: PortOrZero = 1883
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    embedded: bool = False
    # "auto": try MQTT 5, fall back to 3.1.1 when the broker does not answer it (3 s);
    # "3.1.1" for brokers that only speak it (amqtt, old Mosquitto) skips that wait.
    protocol: Literal["auto", "5", "3.1.1"] = "auto"


class SqliteStoreSettings(_Section):
    path: str = "var/cityops-timeseries.sqlite"


class InfluxSettings(_Section):
    """InfluxDB. ``api: v1`` writes line protocol to /write with user/password (1.x, and the
    compatibility API of 2.x/3.x); ``api: v2`` writes through influxdb-client with
    token/org/bucket. Reads always use InfluxQL over /query."""

    url: str = "http://127.0.0.1:8086"
    api: Literal["v1", "v2"] = "v1"
    database: str = "cityops"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    org: str | None = None
    bucket: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    create_database: bool = True


class StoreSettings(_Section):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    sqlite: SqliteStoreSettings = SqliteStoreSettings()
    influxdb: InfluxSettings = InfluxSettings()
    retention: RetentionSettings | None = None  # None: keep every raw reading, no roll-ups


class DatabaseSettings(_Section):
    """The SQL database for state: dead letters, alert state, outbox.
    ``sqlite:///var/cityops.db`` (default) or ``postgresql+psycopg://user@host/db``."""

    url: str = "sqlite:///var/cityops-state.sqlite"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql(\+psycopg)?)://", value):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return value


class LevelSettings(_Section):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    code_length: Annotated[int, Field(ge=1, le=10)]
    label: Label


class HistorySettings(_Section):
    """Readings stored before the 2025 reform carry pre-2025 unit codes; the mapping file
    (layers/history.py, docs/design/009-history-mapping.md) shows them on today's units.
    ``mapping_file: null`` turns the mapping off."""

    mapping_file: str | None = "layers/data/commune_mapping_pre2025_to_2025.csv"
    # Readings from before 00:00 Asia/Ho_Chi_Minh on this day carry the pre-2025 codes.
    reform_date: date = date(2025, 7, 1)

    @field_validator("mapping_file")
    @classmethod
    def _csv_path(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be the path of a CSV file, or null to turn the mapping off")
        return value

    @field_validator("reform_date", mode="before")
    @classmethod
    def _calendar_date(cls, value: Any) -> Any:
        # Only a day: pydantic alone also takes a number as seconds since 1970 (1751328000)
        # and a date-time at midnight; the reform starts at local midnight by definition.
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise ValueError("must be a day written YYYY-MM-DD, such as 2025-07-01")

    @property
    def reform_start(self) -> datetime:
        """The first moment of the 2025 structure, in UTC (2025-06-30 17:00 for 2025-07-01)."""
        local = datetime.combine(self.reform_date, time(0), tzinfo=ZoneInfo(REFORM_TIMEZONE))
        return local.astimezone(UTC)


class HierarchySettings(_Section):
    """Administrative levels from the top down; 2025 structure: province → commune."""

    levels: Annotated[list[LevelSettings], Field(min_length=1)] = [
        LevelSettings(
            name="province", code_length=2, label=Label(vi="Tỉnh/Thành phố", en="Province")
        ),
        LevelSettings(name="commune", code_length=5, label=Label(vi="Xã/Phường", en="Commune")),
    ]
    units_file: str = "layers/data/admin_codes_2025.csv"
    history: HistorySettings = HistorySettings()

    @field_validator("levels")
    @classmethod
    def _unique_names(cls, value: list[LevelSettings]) -> list[LevelSettings]:
        names = [level.name for level in value]
        if len(set(names)) != len(names) or "device" in names:
            raise ValueError(f"must have unique level names, none called 'device' ({names})")
        return value

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)


class ImportFieldsSettings(_Section):
    """Default field names of ``cityops layers import`` (a GIS office's, e.g. MA_XA);
    --code-field/--name-field/--parent-field override them. None = the file has no such field."""

    code: Annotated[str, Field(min_length=1)] = "code"
    name: str | None = "name"
    parent: str | None = "parent_code"


class LayersSettings(_Section):
    """Boundary files (GeoJSON, property ``code``) per level, and the area the system covers."""

    boundaries: dict[str, str] = {
        "province": "layers/data/vn_provinces_2025.geojson",
        "commune": "layers/data/danang_2025_communes.geojson",
    }
    scope: str | None = "48"  # code of the unit the deployment covers; None = the whole country
    map_level: str = "commune"
    import_fields: ImportFieldsSettings = ImportFieldsSettings()


class DevicesSettings(_Section):
    registry: str = "var/devices.csv"  # CSV: device_id,kind,name,lon,lat
    # How often a device of each kind is expected to report (s): the devices page calls it
    # online within 2 intervals of its last message, late within 5, offline after that.
    expected_interval_s: dict[str, Annotated[float, Field(gt=0)]] = {}
    default_interval_s: Annotated[float, Field(gt=0)] = 60.0


class Band(_Section):
    """A display band: values below ``upto`` (and at or above the previous band's) get this colour.
    The last band has ``upto: null``."""

    upto: float | None
    color: Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]
    label: Label


class MetricSettings(_Section):
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    field: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    label: Label
    unit: str
    aggregation: Aggregation = "mean"
    decimals: Annotated[int, Field(ge=0, le=6)] = 1
    bands: list[Band] = []
    legend_ranges: bool = (
        True  # False for level indices (alarm I/II/III), where a range means nothing
    )
    source: str | None = None  # the legal or technical source of the bands
    # Which end of the scale is good news: the unit page's "best" and the change colours
    # (lower for pollution and water; higher for e.g. an on-time rate).
    better: Literal["lower", "higher"] = "lower"
    # A ratio metric: ``field`` / ``denominator`` (a field of the same measurement), summed
    # over a unit and a period before dividing (KPI rules, e.g. on-time dossiers / resolved).
    denominator: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")] | None = None
    target: float | None = None  # a ratio metric's target (0..1), the default of kpi rules
    # A value per period stamped at the period's start (derived hourly/daily indices such as
    # VN_AQI): it is current for two periods, so the dashboard looks that far back for it and
    # calls it old only after that.
    period_s: Annotated[int, Field(gt=0, le=31 * 86400)] | None = None
    # false: a counter read per period (dossiers received in a week), not a live value for
    # the map and panels; ratio metrics are never live.
    live: bool = True

    @property
    def is_live(self) -> bool:
        return self.live and self.denominator is None

    def stale_after(self, default: timedelta) -> timedelta:
        """When a value of this metric is old data: ``default`` (dashboard.stale_after_s),
        or two periods and a few minutes for a value per period."""
        if self.period_s is None:
            return default
        return max(default, timedelta(seconds=2 * self.period_s + 300))

    @field_validator("aggregation", mode="before")
    @classmethod
    def _known_aggregation(cls, value: Any) -> Any:
        if value not in AGGREGATIONS:
            raise ValueError(f"must be one of {', '.join(AGGREGATIONS)}")
        return value

    @field_validator("bands")
    @classmethod
    def _ascending(cls, value: list[Band]) -> list[Band]:
        if not value:
            return value
        limits = [band.upto for band in value]
        if limits[-1] is not None or any(limit is None for limit in limits[:-1]):
            raise ValueError("must end with one last band with upto: null (and only the last band)")
        finite = [limit for limit in limits[:-1] if limit is not None]
        if finite != sorted(finite) or len(set(finite)) != len(finite):
            raise ValueError(f"must increase band by band (upto {finite})")
        return value

    @property
    def ref(self) -> MetricRef:
        return MetricRef(self.kind, self.field)


_CONTRACT_PLACEHOLDERS = {
    # format: (required, optional); {kind} moves to optional when the contract fixes a kind
    "json": (("{kind}", "{device_id}"), ()),
    "senml": (("{kind}",), ("{device_id}",)),
    "gov": (("{service}", "{unit_code}"), ()),
}


def _template_problem(text: str, required: tuple[str, ...], optional: tuple[str, ...]) -> str:
    """What is wrong with a topic template ("" when nothing); ingest.topics.TopicTemplate
    applies the same rules."""
    levels = text.split("/")
    for placeholder in required:
        if levels.count(placeholder) != 1:
            return f"must contain {placeholder} exactly once as a level"
    allowed = (*required, *optional)
    for level in levels:
        if level in allowed:
            if levels.count(level) != 1:
                return f"must contain {level} at most once"
        elif level.startswith("{") and level.endswith("}"):
            return f"may use only the placeholders {', '.join(allowed)}: not {level}"
        elif not level or any(char in level for char in "+#{}"):
            return "must have non-empty literal levels without + # { }"
    return ""


class ContractSettings(_Section):
    """A message contract: the topics of this shape are decoded by this format
    (docs/design/005-message-contracts.md). The first contract whose template fits wins."""

    format: Literal["json", "senml", "gov"] = "json"
    kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] | None = None
    topic: str = "city/{kind}/{device_id}"

    @field_validator("topic")
    @classmethod
    def _placeholders(cls, value: str, info: ValidationInfo) -> str:
        form = info.data.get("format", "json")
        required, optional = _CONTRACT_PLACEHOLDERS[form]
        if info.data.get("kind") is not None:
            if form == "gov":
                raise ValueError("must not be combined with kind for format gov")
            required, optional = (
                tuple(p for p in required if p != "{kind}"),
                (*optional, "{kind}"),
            )
        problem = _template_problem(value, required, optional)
        if problem:
            raise ValueError(f"{problem} (format {form})")
        return value

    def subscription_filter(self) -> str:
        return "/".join("+" if level.startswith("{") else level for level in self.topic.split("/"))


def filter_covers(outer: str, inner: str) -> bool:
    """True when every topic that MQTT filter ``inner`` matches is matched by ``outer``."""
    outer_levels, inner_levels = outer.split("/"), inner.split("/")
    for index, level in enumerate(outer_levels):
        if level == "#":
            return True
        if index >= len(inner_levels):
            return False
        if level != "+" and level != inner_levels[index]:
            return False
    return len(outer_levels) == len(inner_levels)


class IngestSettings(_Section):
    topics: Annotated[list[str], Field(min_length=1)] = ["city/+/+"]
    shared_group: str | None = None  # "cityops" → subscribe $share/cityops/<topic>
    qos: Literal[0, 1, 2] = 1
    client_id: str = "cityops-ingest"
    session_expiry_s: Annotated[int, Field(ge=0)] = 86400
    # InfluxDB writes best in batches of about 5,000 lines (its documentation; bench/)
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    max_in_flight: Annotated[int, Field(ge=1, le=65535)] = 10_000
    max_clock_skew_s: Annotated[int, Field(ge=0)] = (
        600  # a reading further in the future is refused
    )
    # Message contracts (docs/design/005-message-contracts.md): topic template → decoder.
    contracts: Annotated[list[ContractSettings], Field(min_length=1)] = [ContractSettings()]
    max_age_days: Annotated[int, Field(ge=1, le=36_500)] = 365  # an older reading is refused
    max_payload_bytes: Annotated[int, Field(ge=64, le=16 * 1024 * 1024)] = 64 * 1024
    # Devices stored under the "unassigned" unit, listed by `cityops devices unassigned`.
    unassigned_max_devices: Annotated[int, Field(ge=0, le=1_000_000)] = 10_000
    # Batches the store cannot take go here (and their messages are acknowledged); None = off.
    spool_dir: str | None = "var/spool"
    spool_max_mb: Annotated[int, Field(ge=1)] = 1024
    # Self-metrics (docs/design/007-self-metrics.md): GET /metrics for Prometheus on
    # metrics_host:metrics_port (None = off, 0 = any free port), and a snapshot written to
    # the store every metrics_interval_s for the dashboard's /pipeline page.
    metrics_host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    metrics_port: PortOrZero | None = 9464
    metrics_interval_s: Annotated[float, Field(ge=1, le=3600)] = 15.0

    @field_validator("qos", mode="before")
    @classmethod
    def _qos(cls, value: Any) -> Any:
        if value not in (0, 1, 2):
            raise ValueError("must be 0, 1 or 2")
        return value


class SimulatorSettings(_Section):
    air_devices: Annotated[int, Field(ge=0, le=100_000)] = 150
    water_stations: bool = True
    interval_s: Annotated[float, Field(gt=0)] = 5.0
    seed: int = 2025
    client_id: str = "cityops-simulator"
    episode_commune: str | None = "20194"  # a commune given a pollution episode, so alerts fire


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: PortOrZero = 8025
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = "cityops@localhost"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    mailbox: str | None = None  # the demo's local SMTP server writes e-mails here


class AuthSettings(_Section):
    """Sign-in of the dashboard (docs/design/012-sign-in.md)."""

    # password: users of `cityops users` sign in on /login. proxy: a trusted reverse proxy
    # (single sign-on) names the user in `proxy_header`; the user must still exist here.
    mode: Literal["password", "proxy"] = "password"
    session_hours: Annotated[float, Field(gt=0, le=720)] = 12.0  # one shift, then sign in again
    idle_minutes: Annotated[float, Field(gt=0, le=43200)] = 120.0  # no request for this long
    proxy_header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = "X-Remote-User"
    proxy_trusted: list[str] = ["127.0.0.1", "::1"]  # addresses the header is believed from
    # Signs the session cookies; created (0600) at first start when missing. Several
    # dashboard workers must share it. CITYOPS_DASHBOARD__AUTH__SECRET_KEY wins over the file.
    secret_key_file: str = "var/dashboard-secret.key"
    secret_key: SecretStr | None = None
    cookie_secure: bool = False  # true behind TLS (nginx): cookies only over https


class DashboardSettings(_Section):
    host: str = "127.0.0.1"
    port: PortOrZero = 8050
    refresh_s: Annotated[float, Field(ge=1, le=3600)] = 10.0
    stale_after_s: Annotated[int, Field(gt=0)] = (
        900  # a unit whose newest value is older is "stale"
    )
    default_metric: str = "pm25"
    public_url: str = "http://127.0.0.1:8050"  # used for links in e-mails
    # redis://host:6379/0: the named queries' short cache shared by every dashboard worker;
    # null = one cache per process.
    cache_url: Annotated[str, Field(pattern=r"^rediss?://")] | None = None
    auth: AuthSettings = AuthSettings()
    walls: dict[str, WallSettings] = {}  # wall screens, /wall/<name> (core/settings_wall.py)
    # Reverse proxies (nginx) whose X-Forwarded-For is believed: the client's address is
    # then the right-most entry that is not one of these (dashboard/forwarded.py), for the
    # sign-in throttle, /metrics and the logs. [] = use the connection's address as it is.
    trusted_proxies: list[Cidr] = []
    # Who may read /metrics (no sign-in): networks of the client's address (behind a proxy
    # listed in trusted_proxies, the real client's). [] = nobody.
    metrics_allow: list[Cidr] = ["127.0.0.1/32", "::1/128"]


class Settings(_Section):
    site: SiteSettings = SiteSettings()
    broker: BrokerSettings = BrokerSettings()
    store: StoreSettings = StoreSettings()
    database: DatabaseSettings = DatabaseSettings()
    hierarchy: HierarchySettings = HierarchySettings()
    layers: LayersSettings = LayersSettings()
    devices: DevicesSettings = DevicesSettings()
    metrics: dict[str, MetricSettings] = {}
    ingest: IngestSettings = IngestSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    alerts: AlertsSettings = AlertsSettings()
    smtp: SmtpSettings = SmtpSettings()
    dashboard: DashboardSettings = DashboardSettings()
    logging: LoggingSettings = LoggingSettings()  # core/settings_ops.py
    base_dir: Path = Path(".")  # the config file's folder; relative paths resolve against it

    def path(self, relative: str) -> Path:
        """Resolve a path from the config file against the config file's folder."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate)


def _cross_check(settings: Settings) -> list[ConfigError]:
    """Checks that span sections: references by name must point at something declared."""
    problems: list[ConfigError] = []
    levels = list(settings.hierarchy.level_names)
    for level in settings.layers.boundaries:
        if level not in levels:
            problems.append(
                ConfigError(
                    f"layers.boundaries.{level}",
                    level,
                    f"must be a level of hierarchy.levels {levels}",
                )
            )
    if settings.layers.map_level not in levels:
        problems.append(
            ConfigError("layers.map_level", settings.layers.map_level, f"must be one of {levels}")
        )
    metrics = sorted(settings.metrics)
    if settings.metrics and settings.dashboard.default_metric not in settings.metrics:
        problems.append(
            ConfigError(
                "dashboard.default_metric",
                settings.dashboard.default_metric,
                f"must be one of the metrics {metrics}",
            )
        )
    for index, rule in enumerate(settings.alerts.rules):
        problems.extend(_rule_problems(f"alerts.rules.{index}", rule, settings))
    for index, contract in enumerate(settings.ingest.contracts):
        wanted = contract.subscription_filter()
        if not any(filter_covers(topic, wanted) for topic in settings.ingest.topics):
            problems.append(
                ConfigError(
                    f"ingest.contracts.{index}.topic",
                    contract.topic,
                    f"is never received: add {wanted} (or a wider filter) to ingest.topics",
                )
            )
    influx = settings.store.influxdb
    if settings.store.backend == "influxdb" and influx.api == "v2":
        for key in ("token", "org", "bucket"):
            if not getattr(influx, key):
                problems.append(
                    ConfigError(
                        f"store.influxdb.{key}",
                        None,
                        "must be set when store.influxdb.api is v2"
                        + (
                            " (environment variable CITYOPS_STORE__INFLUXDB__TOKEN)"
                            if key == "token"
                            else ""
                        ),
                    )
                )
    return problems


def _rule_problems(key: str, rule: AlertRule, settings: Settings) -> list[ConfigError]:
    """An alert rule's references: its metric, its level, and what its type needs of the
    metric (kpi: a ratio metric with a target; the others: a plain metric)."""
    levels = [*settings.hierarchy.level_names, DEVICE_LEVEL]
    problems: list[ConfigError] = []
    if rule.level not in levels:
        problems.append(ConfigError(f"{key}.level", rule.level, f"must be one of {levels}"))
    metric = settings.metrics.get(rule.metric)
    if metric is None:
        metrics = sorted(settings.metrics)
        problems.append(
            ConfigError(f"{key}.metric", rule.metric, f"must be one of the metrics {metrics}")
        )
        return problems
    if rule.type == "kpi":
        if metric.denominator is None:
            ratios = sorted(name for name, each in settings.metrics.items() if each.denominator)
            problems.append(
                ConfigError(
                    f"{key}.metric",
                    rule.metric,
                    f"must be a ratio metric (one with a denominator) for a kpi rule {ratios}",
                )
            )
        target = rule.target if rule.target is not None else metric.target
        if target is None:
            problems.append(
                ConfigError(
                    f"{key}.target",
                    None,
                    f"must be set for a kpi rule, or metrics.{rule.metric}.target",
                )
            )
        elif not 0 <= target <= 1:
            problems.append(
                ConfigError(
                    f"metrics.{rule.metric}.target",
                    target,
                    f"must be a ratio from 0 to 1 (0.9 = 90 %) for the kpi rule {rule.id}",
                )
            )
    elif metric.denominator is not None and rule.type != "no_data":
        problems.append(
            ConfigError(
                f"{key}.metric",
                rule.metric,
                f"is a ratio metric: only kpi and no_data rules can use it, not {rule.type}",
            )
        )
    return problems


# --------------------------------------------------------------------------- loading


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[list[str], str]]:
    found = []
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if all(path):
            found.append((path, raw))
    return sorted(found)


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node: Any = tree
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
            continue
        if part not in node or node[part] is None:
            node[part] = {}
        node = node[part]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


def _find_secrets_in_file(tree: Any, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(tree, dict):
        for key, value in tree.items():
            dotted = f"{prefix}.{key}" if prefix else str(key)
            if key in SECRET_KEYS and value not in (None, ""):
                found.append(dotted)
            else:
                found.extend(_find_secrets_in_file(value, dotted))
    return found


def _format_error(error: Mapping[str, Any], raw: Mapping[str, Any]) -> ConfigError:
    location = [str(part) for part in error["loc"]]
    key = ".".join(location) or "(top level)"
    value: Any = error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind == "extra_forbidden":
        return ConfigError(key, value, "is not a known setting (check the spelling)")
    if kind == "missing":
        return ConfigError(key, None, "is required")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        ctx = error.get("ctx", {})
        words = {"ge": "at least", "le": "at most", "gt": "greater than", "lt": "less than"}
        bounds = " and ".join(f"{words.get(k, k)} {v}" for k, v in ctx.items())
        return ConfigError(key, value, f"must be {bounds}")
    if kind == "literal_error":
        ctx = error.get("ctx", {})
        return ConfigError(key, value, f"must be {ctx.get('expected', message)}")
    return ConfigError(
        key, value, message if message.startswith("must") else f"is invalid ({message})"
    )


def parse_settings(
    raw: Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path = Path("."),
) -> Settings:
    """Validate a configuration tree (as read from YAML) plus environment overrides.

    Raises ConfigError for the first problem; :func:`check_settings` returns them all."""
    problems, settings = _validate(raw, environ=environ, base_dir=base_dir)
    if problems:
        raise problems[0]
    assert settings is not None
    return settings


def _validate(
    raw: Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str] | None,
    base_dir: Path,
) -> tuple[list[ConfigError], Settings | None]:
    tree: dict[str, Any] = dict(raw or {})
    if not isinstance(raw, Mapping) and raw is not None:
        return [ConfigError("(top level)", raw, "must be a mapping of sections")], None
    problems = [
        ConfigError(
            key,
            "***",
            f"is a secret: set it in the environment variable "
            f"{ENV_PREFIX}{key.upper().replace('.', '__')}, not in the file",
        )
        for key in _find_secrets_in_file(tree)
    ]
    tree = yaml.safe_load(yaml.safe_dump(tree))  # deep copy, plain types
    for path, value in _env_overrides(os.environ if environ is None else environ):
        try:
            parsed = yaml.safe_load(value) if path[-1] not in SECRET_KEYS else value
        except (yaml.YAMLError, ValueError):  # ValueError: a date that does not exist
            parsed = value
        try:
            _set_path(tree, path, parsed)
        except (KeyError, IndexError, ValueError, TypeError):
            problems.append(
                ConfigError(".".join(path), value, "names no setting (from the environment)")
            )
    tree["base_dir"] = base_dir
    try:
        settings = Settings.model_validate(tree)
    except ValidationError as exc:
        problems.extend(_format_error(error, tree) for error in exc.errors())
        return problems, None
    problems.extend(_cross_check(settings))
    return problems, (settings if not problems else None)


def read_config_file(path: Path) -> Any:
    if not path.exists():
        raise ConfigError("--config", str(path), "must name an existing YAML file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError("--config", str(path), f"must be valid YAML ({exc})") from exc
    except ValueError as exc:  # YAML reads 2025-13-01 as a date, which does not exist
        raise ConfigError("--config", str(path), f"holds an impossible date ({exc})") from exc


def load_settings(path: Path | str, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path``, apply environment overrides, validate. Raises ConfigError."""
    config_path = Path(path)
    raw = read_config_file(config_path)
    return parse_settings(raw, environ=environ, base_dir=config_path.resolve().parent)


def check_settings(path: Path | str, environ: Mapping[str, str] | None = None) -> list[ConfigError]:
    """Every problem of a file, for ``cityops check-config``; empty when it is good."""
    config_path = Path(path)
    try:
        raw = read_config_file(config_path)
    except ConfigError as exc:
        return [exc]
    problems, _ = _validate(raw, environ=environ, base_dir=config_path.resolve().parent)
    return problems
