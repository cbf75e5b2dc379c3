"""The Store port on InfluxDB: line protocol in, InfluxQL out (ARCHITECTURE decision 1).

``api: v1`` writes gzip'd line protocol to ``/write`` (InfluxDB 1.x and the compatibility
API of 2.x/3.x) with basic auth; ``api: v2`` writes through ``influxdb-client`` to
``/api/v2/write`` with a token. Reads are always InfluxQL on ``/query``. Every name and
value put into a query is quoted here, never interpolated raw.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import requests
from requests.auth import HTTPBasicAuth

from core.errors import PermanentError, RetryableError
from core.settings import InfluxSettings
from core.settings_retention import RetentionSettings
from core.store.influx_rollup import DEFAULT_RAW_RP, InfluxRetention, InfluxRollups
from core.store.influx_rollup_read import parse_lasts, parse_stats
from core.store.influx_setup import InfluxAdmin, NotAuthorizedError
from core.store.lineprotocol import clean_points, encode_lines, nfc, refused_error
from core.store.rollup import (
    DeviceLast,
    check_aggregation,
    epoch_ms,
    every_ms,
    roll_up,
    roll_up_window,
    utc_from_ms,
)
from core.types import Aggregation, MetricRef, Point, SeriesPoint, UnitRef, UnitValue

# The port's aggregations by their InfluxQL function (a fixed table, never user text).
_INFLUXQL_FUNCTIONS: dict[str, str] = {
    "mean": "mean",
    "max": "max",
    "min": "min",
    "sum": "sum",
    "last": "last",
}


def quote_ident(name: str) -> str:
    """An InfluxQL identifier: double quotes, with backslash and quote escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal: single quotes, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def time_literal(ts: datetime) -> str:
    return f"{epoch_ms(ts)}ms"


def _where(since: datetime, until: datetime | None, parent: UnitRef | None) -> str:
    where = f"time >= {time_literal(since)}"
    if until is not None:
        where += f" AND time < {time_literal(until)}"
    if parent is not None:
        where += f" AND {quote_ident(nfc(parent.level))} = {quote_string(nfc(parent.code))}"
    return where


def _group_by(level: str) -> str:
    """Per (device, unit) pair; level "device" is the device tag itself."""
    if nfc(level) == "device":
        return 'GROUP BY "device"'
    return f'GROUP BY "device", {quote_ident(nfc(level))}'


def latest_query(
    metric: MetricRef,
    level: str,
    since: datetime,
    parent: UnitRef | None = None,
    until: datetime | None = None,
) -> str:
    """Each (device, unit) pair's last value at or after ``since`` (and before ``until``)."""
    return (
        f"SELECT last({quote_ident(nfc(metric.field))}) FROM {quote_ident(nfc(metric.measurement))}"
        f" WHERE {_where(since, until, parent)} {_group_by(level)}"
    )


def window_stats_query(
    metric: MetricRef,
    level: str,
    start: datetime,
    end: datetime,
    parent: UnitRef | None = None,
) -> str:
    """Each (device, unit) pair's count, sum, min and max of every value in [start, end)."""
    field = quote_ident(nfc(metric.field))
    return (
        f"SELECT count({field}), sum({field}), min({field}), max({field})"
        f" FROM {quote_ident(nfc(metric.measurement))}"
        f" WHERE {_where(start, end, parent)} {_group_by(level)}"
    )


def series_query(
    metric: MetricRef,
    unit: UnitRef,
    start: datetime,
    end: datetime,
    every: timedelta,
    aggregation: Aggregation,
) -> str:
    """Epoch-aligned buckets (InfluxDB's default alignment); empty buckets left out."""
    function = _INFLUXQL_FUNCTIONS[check_aggregation(aggregation)]
    return (
        f"SELECT {function}({quote_ident(nfc(metric.field))})"
        f" FROM {quote_ident(nfc(metric.measurement))}"
        f" WHERE {quote_ident(nfc(unit.level))} = {quote_string(nfc(unit.code))}"
        f" AND time >= {time_literal(start)} AND time < {time_literal(end)}"
        f" GROUP BY time({every_ms(every)}ms) fill(none)"
    )


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text.strip()[:500] or response.reason


def _http_error(response: requests.Response, doing: str) -> RetryableError | PermanentError:
    """What the caller should do about a failed answer (5xx and 429: retry later)."""
    message = (
        f"InfluxDB could not {doing}: HTTP {response.status_code}: {_server_message(response)}"
    )
    if response.status_code == 403:  # e.g. "requires admin privilege"
        return NotAuthorizedError(message)
    if response.status_code == 429 or response.status_code >= 500:
        if "retention policy not found" in message:
            return PermanentError(message)  # a 500 in 1.x, but a wrong setting
        return RetryableError(message)
    return PermanentError(message)


class InfluxStore(InfluxAdmin, InfluxRetention):
    """The Store port on InfluxDB. ``session`` is injectable (tests, proxies); nothing
    connects until the first call. On first use (v1) :meth:`setup` runs when
    ``create_database`` is set, else with retention the policies are only checked, so
    the store can be built while InfluxDB is down and run as a least-privilege user."""

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        session: requests.Session | None = None,
        retention: RetentionSettings | None = None,
    ) -> None:
        if retention is not None and settings.api == "v2":
            raise PermanentError("store.retention needs store.influxdb.api v1 (policies and CQs)")
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self._session = session or requests.Session()
        self._owns_session = session is None
        # With retention, readings go to the raw policy (the configured one, else "raw").
        self._rp = settings.retention_policy or (DEFAULT_RAW_RP if retention else None)
        self._rollups = InfluxRollups(self, self._rp or "", retention) if retention else None
        ready = settings.api == "v2" or not settings.create_database
        self._database_ready = ready and self._rollups is None
        self._v2_client: Any = None  # influxdb_client.InfluxDBClient, built on first v2 write
        self._v2_lock = threading.Lock()

    # -- HTTP --------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        if self.settings.api == "v2" and self.settings.token is not None:
            return {"Authorization": f"Token {self.settings.token.get_secret_value()}"}
        return {}

    def _basic_auth(self) -> HTTPBasicAuth | None:
        # UTF-8 bytes: requests would encode str as latin-1 and fail on Vietnamese letters.
        if self.settings.api == "v1" and self.settings.username:
            password = self.settings.password.get_secret_value() if self.settings.password else ""
            return HTTPBasicAuth(self.settings.username.encode(), password.encode())
        return None

    def _post(
        self, path: str, doing: str, *, params: dict[str, str], **kwargs: Any
    ) -> requests.Response:
        headers = self._auth_headers() | kwargs.pop("headers", {})
        try:
            response = self._session.post(
                f"{self.url}{path}",
                params=params,
                headers=headers,
                auth=self._basic_auth(),
                timeout=self.settings.timeout_s,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise RetryableError(f"InfluxDB at {self.url} could not {doing}: {exc}") from exc
        return response

    def _query(self, q: str, doing: str) -> dict[str, Any]:
        """Run one InfluxQL statement; its result, or the error of the statement."""
        self._ensure_database()
        params = {"db": self.settings.database, "epoch": "ms"}
        if self._rp:
            params["rp"] = self._rp
        response = self._post("/query", doing, params=params, data={"q": q})
        if response.status_code != 200:
            raise _http_error(response, doing)
        try:
            # orjson: a 1,000-device answer is ~100 kB of JSON, decoded on every map refresh.
            result: dict[str, Any] = orjson.loads(response.content)["results"][0]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RetryableError(f"InfluxDB could not {doing}: unreadable answer") from exc
        error = result.get("error")
        if error:
            raise self._statement_error(str(error), doing)
        if result.get("partial"):
            raise PermanentError(
                f"InfluxDB could not {doing}: answer cut by the server's max-row-limit"
            )
        return result

    def _statement_error(self, error: str, doing: str) -> RetryableError | PermanentError:
        message = f"InfluxDB could not {doing}: {error}"
        if (
            error.startswith("database not found")
            and self.settings.create_database
            and self.settings.api == "v1"
        ):
            self._database_ready = False  # dropped while we run: create it on the next call
            return RetryableError(message)
        return PermanentError(message)

    def _ensure_database(self) -> None:
        if self._database_ready:
            return
        if self.settings.create_database:
            self.setup()  # the database and, with retention, the policies and CQ
        else:
            self._check_setup()  # least privilege: an admin ran `cityops store setup`
        self._database_ready = True

    # -- writes ------------------------------------------------------------------------

    def write(self, points: Sequence[Point]) -> None:
        """Refused points (see lineprotocol) raise PermanentError after the others are
        written. A partial write refused by the server (field type conflict, outside the
        retention policy) is a PermanentError too: retrying those points never succeeds,
        and the accepted ones are stored already."""
        clean, refused = clean_points(points)
        if clean:
            if self._rollups is not None:  # readings below the rolled-up edge (design 017)
                self._rollups.mark_late([point.ts_ms for point in clean])
            body = encode_lines(clean).encode("utf-8")
            if self.settings.api == "v2":
                self._write_v2(body, len(clean))
            else:
                self._write_v1(body, len(clean))
        if refused:
            raise refused_error(refused, len(points))

    def _write_v1(self, body: bytes, count: int) -> None:
        self._ensure_database()
        doing = f"write {count} points"
        params = {"db": self.settings.database, "precision": "ms"}
        if self._rp:
            params["rp"] = self._rp
        response = self._post(
            "/write",
            doing,
            params=params,
            data=gzip.compress(body, compresslevel=5),
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
        )
        if response.status_code == 204:
            return
        if response.status_code == 404:  # "database not found": maybe dropped while we run
            raise self._statement_error(_server_message(response), doing)
        raise _http_error(response, doing)

    def _write_v2(self, body: bytes, count: int) -> None:
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision

        with self._v2_lock:
            if self._v2_client is None:
                self._v2_client = self._make_v2_client()
        doing = f"write {count} points"
        bucket = self.settings.bucket or self.settings.database
        try:
            self._v2_client.write_api(write_options=SYNCHRONOUS).write(
                bucket, self.settings.org, record=body, write_precision=WritePrecision.MS
            )
        except Exception as exc:
            raise _v2_error(exc, doing) from exc

    def _make_v2_client(self) -> Any:
        from influxdb_client.client.influxdb_client import InfluxDBClient

        token = self.settings.token.get_secret_value() if self.settings.token else ""
        return InfluxDBClient(
            url=self.url,
            token=token,
            org=self.settings.org or "",
            timeout=int(self.settings.timeout_s * 1000),
            enable_gzip=True,
        )

    # -- reads -------------------------------------------------------------------------

    def latest_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        since: datetime,
        parent: UnitRef | None = None,
        aggregation: Aggregation = "mean",
        until: datetime | None = None,
    ) -> list[UnitValue]:
        aggregation = check_aggregation(aggregation)
        query = latest_query(metric, level, since, parent, until)
        result = self._query(query, f"read the latest {metric.measurement}.{metric.field}")
        level_tag = nfc(level)
        rows: list[DeviceLast] = []
        for series in result.get("series", []):
            device, unit = _pair(series, level_tag)
            rows.extend(
                DeviceLast(device, unit, ts_ms, float(value))
                for ts_ms, value in series["values"]
                if value is not None
            )
        return roll_up(rows, aggregation)

    def window_by_unit(
        self,
        metric: MetricRef,
        level: str,
        *,
        start: datetime,
        end: datetime,
        aggregation: Aggregation,
        parent: UnitRef | None = None,
    ) -> list[UnitValue]:
        """Two statements: the statistics of every pair, then each pair's last reading (its
        time and value; InfluxQL gives no time for last() next to other functions)."""
        aggregation = check_aggregation(aggregation)
        if self._rollups is not None:  # whole hours of a long window: roll-ups
            rolled = self._rollups.window_rows(metric, level, start, end, parent, aggregation)
            return roll_up_window(rolled[1], rolled[0], aggregation) if rolled[0] else []
        doing = f"read the window of {metric.measurement}.{metric.field}"
        level_tag = nfc(level)
        result = self._query(window_stats_query(metric, level, start, end, parent), doing)
        stats = parse_stats(result, level_tag)
        if not stats:
            return []
        result = self._query(latest_query(metric, level, start, parent, end), doing)
        return roll_up_window(parse_lasts(result, level_tag), stats, aggregation)

    def series(
        self,
        metric: MetricRef,
        unit: UnitRef,
        *,
        start: datetime,
        end: datetime,
        every: timedelta,
        aggregation: Aggregation = "mean",
    ) -> list[SeriesPoint]:
        aggregation = check_aggregation(aggregation)
        if self._rollups is not None:  # whole-hour buckets of a long range: roll-ups
            rolled = self._rollups.series_points(metric, unit, start, end, every, aggregation)
            if rolled is not None:
                return [SeriesPoint(utc_from_ms(ms), value) for ms, value in rolled]
        query = series_query(metric, unit, start, end, every, aggregation)
        result = self._query(query, f"read the series of {unit.level} {unit.code}")
        points = [
            SeriesPoint(utc_from_ms(ts_ms), float(value))
            for series in result.get("series", [])
            for ts_ms, value in series["values"]
            if value is not None
        ]
        return sorted(points, key=lambda point: point.ts)

    def close(self) -> None:
        """Close the HTTP session (when this store made it) and the v2 client."""
        if self._v2_client is not None:
            self._v2_client.close()
            self._v2_client = None
        if self._owns_session:
            self._session.close()


def _pair(series: dict[str, Any], level_tag: str) -> tuple[str, str]:
    """The (device, unit) tags of one answer series; "" for a tag the points lack."""
    tags = series.get("tags") or {}
    return str(tags.get("device") or ""), str(tags.get(level_tag) or "")


def _v2_error(exc: Exception, doing: str) -> RetryableError | PermanentError:
    """influxdb-client raises ApiException with the HTTP status, urllib3 errors when the
    server cannot be reached."""
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        detail = getattr(exc, "message", None) or exc.body or exc.reason or ""
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        message = f"InfluxDB could not {doing}: HTTP {status}: {str(detail).strip()[:500]}"
        if status == 429 or status >= 500 or status == 0:
            return RetryableError(message)
        return PermanentError(message)
    if isinstance(exc, HTTPError | OSError):
        return RetryableError(f"InfluxDB could not {doing}: {exc}")
    return PermanentError(f"InfluxDB could not {doing}: {exc!r}")
