"""What InfluxStore sends and how it reads answers, over real HTTP to a local recorder
(InfluxDB 1.6 has no /api/v2, so the v2 write path is checked here)."""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr

from core.errors import PermanentError, RetryableError
from core.settings import InfluxSettings
from core.store import InfluxStore
from core.types import MetricRef, Point, SeriesPoint, UnitRef, UnitValue
from tests.unit.store.conftest import RecordingServer

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
T0_MS = 1793581200000
POINT = Point("air", {"province": "48", "device": "aq 1"}, {"pm25": 35.2}, T0)
LINE = f"air,device=aq\\ 1,province=48 pm25=35.2 {T0_MS}\n"


def store_for(server: RecordingServer, **settings: object) -> InfluxStore:
    return InfluxStore(InfluxSettings(url=server.url, timeout_s=5, **settings))  # type: ignore[arg-type]


def test_v1_write_creates_the_database_once_then_posts_gzipped_line_protocol(
    http_server: RecordingServer,
) -> None:
    http_server.answer(200, '{"results":[{"statement_id":0}]}')
    store = store_for(
        http_server,
        database="city ops",
        retention_policy="one_year",
        username="ingest",
        password=SecretStr("bí mật"),
    )
    store.write([POINT])
    store.write([POINT])
    store.close()

    create, first, second = http_server.requests
    assert (create.method, create.path) == ("POST", "/query")
    assert "q=CREATE+DATABASE+%22city+ops%22" in create.body.decode()
    assert (first.path, first.query) == (
        "/write",
        {"db": ["city ops"], "precision": ["ms"], "rp": ["one_year"]},
    )
    assert first.headers["content-encoding"] == "gzip"
    assert first.text == LINE
    credentials = base64.b64encode("ingest:bí mật".encode()).decode()
    assert first.headers["authorization"] == f"Basic {credentials}"
    assert second.text == LINE


def test_v1_without_create_database_and_without_credentials(http_server: RecordingServer) -> None:
    store = store_for(http_server, create_database=False)
    store.write([POINT])
    [write] = http_server.requests
    assert write.path == "/write"
    assert "authorization" not in write.headers
    assert write.query == {"db": ["cityops"], "precision": ["ms"]}


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (503, '{"error":"timeout"}', RetryableError, "HTTP 503: timeout"),
        (429, '{"error":"too many requests"}', RetryableError, "HTTP 429"),
        (500, '{"error":"engine: cache full"}', RetryableError, "cache full"),
        (500, '{"error":"retention policy not found: x"}', PermanentError, "retention policy"),
        (
            400,
            '{"error":"partial write: field type conflict: input field \\"pm25\\" dropped=1"}',
            PermanentError,
            "partial write: field type conflict",
        ),
        (401, '{"error":"authorization failed"}', PermanentError, "HTTP 401: authorization failed"),
        (413, "request too large", PermanentError, "request too large"),
    ],
)
def test_v1_write_errors_say_whether_to_retry(
    http_server: RecordingServer, status: int, body: str, error: type[Exception], message: str
) -> None:
    http_server.answer(status, body)
    store = store_for(http_server, create_database=False)
    with pytest.raises(error, match=message) as caught:
        store.write([POINT])
    assert isinstance(caught.value, RetryableError) == (error is RetryableError)


def free_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_server_is_retryable_for_writes_and_reads() -> None:
    url = f"http://127.0.0.1:{free_closed_port()}"
    store = InfluxStore(InfluxSettings(url=url, timeout_s=2))
    with pytest.raises(RetryableError, match="could not create database") as caught:
        store.write([POINT])
    assert caught.value.__cause__ is not None
    with pytest.raises(RetryableError):
        store.latest_by_unit(MetricRef("air", "pm25"), "commune", since=T0)
    v2 = InfluxStore(
        InfluxSettings(url=url, api="v2", token=SecretStr("t"), org="o", bucket="b", timeout_s=2)
    )
    with pytest.raises(RetryableError, match="write 1 points"):
        v2.write([POINT])
    v2.close()


def test_a_server_that_never_answers_is_retryable_after_timeout_s() -> None:
    """A hung influxd (disk stalled, compaction) accepts the connection and says nothing:
    the write gives up after ``timeout_s`` and the caller retries later."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nobody reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = InfluxStore(InfluxSettings(url=url, timeout_s=0.3, create_database=False))
        started = time.monotonic()
        with pytest.raises(RetryableError, match="timed out") as caught:
            store.write([POINT])
        assert time.monotonic() - started < 3.0
        assert caught.value.__cause__ is not None
        with pytest.raises(RetryableError, match="timed out"):
            store.latest_by_unit(MetricRef("air", "pm25"), "commune", since=T0)
        store.close()


def test_a_5xx_then_success_writes_on_the_callers_retry(http_server: RecordingServer) -> None:
    http_server.answer(503, '{"error":"timeout"}')
    store = store_for(http_server, create_database=False)
    with pytest.raises(RetryableError, match="HTTP 503"):
        store.write([POINT])
    store.write([POINT])  # the next answer is 204
    assert [request.text for request in http_server.requests] == [LINE, LINE]


def test_v2_write_goes_to_api_v2_with_token_org_bucket_and_ms_precision(
    http_server: RecordingServer,
) -> None:
    store = store_for(
        http_server, api="v2", token=SecretStr("s3cret"), org="da-nang", bucket="cityops/autogen"
    )
    store.write([POINT])
    store.close()
    [write] = http_server.requests  # no CREATE DATABASE on v2
    assert (write.method, write.path) == ("POST", "/api/v2/write")
    assert write.query == {
        "org": ["da-nang"],
        "bucket": ["cityops/autogen"],
        "precision": ["ms"],
    }
    assert write.headers["authorization"] == "Token s3cret"
    assert write.text == LINE


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, RetryableError), (429, RetryableError), (400, PermanentError), (401, PermanentError)],
)
def test_v2_write_errors_say_whether_to_retry(
    http_server: RecordingServer, status: int, error: type[Exception]
) -> None:
    http_server.answer(status, '{"code":"invalid","message":"bucket is read-only"}')
    store = store_for(http_server, api="v2", token=SecretStr("t"), org="o", bucket="b")
    with pytest.raises(error, match=f"HTTP {status}: bucket is read-only") as caught:
        store.write([POINT])
    assert isinstance(caught.value, RetryableError) == (error is RetryableError)
    assert caught.value.__cause__ is not None
    store.close()


def test_reads_send_influxql_with_token_and_parse_the_answer(http_server: RecordingServer) -> None:
    latest = {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "name": "air",
                        "tags": {"device": "a", "commune": "20194"},
                        "columns": ["time", "last"],
                        "values": [[T0_MS + 5, 10]],
                    },
                    {
                        "name": "air",
                        "tags": {"device": "b", "commune": "20194"},
                        "columns": ["time", "last"],
                        "values": [[T0_MS, 30.5]],
                    },
                ],
            }
        ]
    }
    buckets = {
        "results": [
            {
                "statement_id": 0,
                "series": [{"name": "air", "columns": ["time", "mean"], "values": [[T0_MS, 2.5]]}],
            }
        ]
    }
    http_server.answer(200, json.dumps(latest))
    http_server.answer(200, json.dumps(buckets))
    store = store_for(http_server, api="v2", token=SecretStr("tok"), org="o", bucket="b")
    result = store.latest_by_unit(
        MetricRef("air", "pm25"), "commune", since=T0, parent=UnitRef("province", "48")
    )
    assert result == [
        UnitValue("20194", 20.25, T0 + timedelta(milliseconds=5), 2),
    ]
    trend = store.series(
        MetricRef("air", "pm25"),
        UnitRef("commune", "20194"),
        start=T0,
        end=T0 + timedelta(hours=1),
        every=timedelta(minutes=15),
    )
    assert trend == [SeriesPoint(T0, 2.5)]
    first, second = http_server.requests
    assert first.path == "/query"
    assert first.query == {"db": ["cityops"], "epoch": ["ms"]}
    assert first.headers["authorization"] == "Token tok"
    assert parse_qs(first.body.decode())["q"] == [
        f'SELECT last("pm25") FROM "air" WHERE time >= {T0_MS}ms AND "province" = \'48\''
        ' GROUP BY "device", "commune"'
    ]
    assert parse_qs(second.body.decode())["q"] == [
        f'SELECT mean("pm25") FROM "air" WHERE "commune" = \'20194\''
        f" AND time >= {T0_MS}ms AND time < {T0_MS + 3_600_000}ms"
        " GROUP BY time(900000ms) fill(none)"
    ]


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (
            200,
            '{"results":[{"statement_id":0,"error":"database not found: x"}]}',
            PermanentError,
            "database not found",
        ),
        (400, '{"error":"error parsing query: found SELEC"}', PermanentError, "parsing query"),
        (200, '{"results":[{"statement_id":0,"partial":true}]}', PermanentError, "max-row-limit"),
        (502, "<html>bad gateway</html>", RetryableError, "HTTP 502"),
        (200, "not json", RetryableError, "unreadable answer"),
    ],
)
def test_read_errors(
    http_server: RecordingServer, status: int, body: str, error: type[Exception], message: str
) -> None:
    http_server.answer(status, body)
    store = store_for(http_server, create_database=False)
    with pytest.raises(error, match=message) as caught:
        store.latest_by_unit(MetricRef("air", "pm25"), "commune", since=T0)
    assert isinstance(caught.value, RetryableError) == (error is RetryableError)
