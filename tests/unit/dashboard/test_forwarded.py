"""The client's address behind a trusted reverse proxy (dashboard/forwarded.py), and what
depends on it: the sign-in throttle, single sign-on's proxy check."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from core.settings import load_settings
from dashboard.forwarded import client_address
from layers.geography import Geography
from tests.fixtures.signin import TEST_SECRET_ENV, sign_in
from tests.unit.dashboard.test_auth import REPO, make_site

LOCAL = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.1.0.0/16")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),  # nginx on this host
        ("127.0.0.1", None, "127.0.0.1"),  # nothing forwarded: the proxy itself
        ("198.51.100.2", "203.0.113.7", "198.51.100.2"),  # not a proxy of ours: ignored
        # The client wrote the left entry itself; our proxies appended the right ones.
        ("127.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "203.0.113.7, 10.1.2.3", "203.0.113.7"),  # a load balancer, then nginx
        ("127.0.0.1", "10.1.2.3, 10.1.9.9", "10.1.2.3"),  # only proxies: the first
        ("127.0.0.1", "203.0.113.7, not-an-address", "127.0.0.1"),  # malformed: none believed
        ("127.0.0.1", "2001:db8::5", "2001:db8::5"),
        ("127.0.0.1", " , ", "127.0.0.1"),
    ],
)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, LOCAL) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("127.0.0.1", "203.0.113.7", []) == "127.0.0.1"


def test_behind_nginx_one_guesser_does_not_lock_the_name_for_everyone(
    tmp_path: Path, geography: Geography
) -> None:
    environ = TEST_SECRET_ENV | {"CITYOPS_DASHBOARD__TRUSTED_PROXIES": '["127.0.0.1"]'}
    site = make_site(tmp_path, load_settings(REPO / "config.yaml", environ=environ), geography)
    guesser = {"HTTP_X_FORWARDED_FOR": "203.0.113.66"}
    officer = {"HTTP_X_FORWARDED_FOR": "10.20.30.40"}
    try:
        site.client.environ_base.update(guesser)
        for _ in range(5):
            assert sign_in(site.client, "admin", "not-the-password").status_code == 401
        assert sign_in(site.client, "admin").status_code == 429  # the guesser is locked out
        site.client.environ_base.update(officer)
        assert sign_in(site.client, "admin").status_code == 303  # the real admin is not
    finally:
        site.engine.dispose()


def test_without_trusted_proxies_everyone_behind_nginx_shares_one_lock(
    tmp_path: Path, geography: Geography
) -> None:
    """What trusted_proxies is for: the same requests, the setting left empty."""
    site = make_site(
        tmp_path, load_settings(REPO / "config.yaml", environ=TEST_SECRET_ENV), geography
    )
    try:
        site.client.environ_base.update({"HTTP_X_FORWARDED_FOR": "203.0.113.66"})
        for _ in range(5):
            sign_in(site.client, "admin", "not-the-password")
        site.client.environ_base.update({"HTTP_X_FORWARDED_FOR": "10.20.30.40"})
        assert sign_in(site.client, "admin").status_code == 429
    finally:
        site.engine.dispose()


def test_single_sign_on_still_checks_the_proxy_not_the_forwarded_client(
    tmp_path: Path, geography: Geography
) -> None:
    environ = TEST_SECRET_ENV | {
        "CITYOPS_DASHBOARD__AUTH__MODE": "proxy",
        "CITYOPS_DASHBOARD__TRUSTED_PROXIES": '["127.0.0.1"]',
    }
    site = make_site(tmp_path, load_settings(REPO / "config.yaml", environ=environ), geography)
    try:
        through_proxy = site.client.get(
            "/",
            headers={"X-Remote-User": "hai-van", "X-Forwarded-For": "203.0.113.7"},
        )
        assert through_proxy.status_code == 200
        # Someone on the network claiming to be forwarded by our proxy is still refused.
        direct = site.client.get(
            "/",
            headers={"X-Remote-User": "admin", "X-Forwarded-For": "127.0.0.1"},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},
        )
        assert direct.status_code == 403
    finally:
        site.engine.dispose()


def test_metrics_through_the_proxy_are_judged_on_the_real_client(
    tmp_path: Path, geography: Geography
) -> None:
    environ = TEST_SECRET_ENV | {"CITYOPS_DASHBOARD__TRUSTED_PROXIES": '["127.0.0.1"]'}
    site = make_site(tmp_path, load_settings(REPO / "config.yaml", environ=environ), geography)
    try:
        outside = site.client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
        assert outside.status_code == 403
        on_host = site.client.get("/metrics")  # Prometheus on this host, no proxy
        assert on_host.status_code == 200
        assert "cityops_dashboard_requests_total" in on_host.get_data(as_text=True)
    finally:
        site.engine.dispose()
