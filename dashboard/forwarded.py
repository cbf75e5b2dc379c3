"""The client's address behind a reverse proxy (nginx on the same host, or a load balancer).

Without it every request seems to come from the proxy: five wrong passwords for one name
from anyone would lock that name for everyone (the sign-in throttle counts per name and
address), and the /metrics allow-list would admit the whole world. With
``dashboard.trusted_proxies`` set, a request whose peer is one of those networks gets, as
its ``REMOTE_ADDR``, the right-most ``X-Forwarded-For`` entry that is not itself a trusted
proxy (entries further left are written by the client and never believed). The peer's
own address stays in ``environ["cityops.peer_addr"]``: the single sign-on mode checks
that the *proxy* sent the user header. A peer outside the list is taken as it is, and its
``X-Forwarded-For`` ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

PEER_KEY = "cityops.peer_addr"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The address to treat as the client's (see the module's docstring)."""

    def is_trusted(text: str) -> bool:
        address = _address(text)
        return address is not None and any(address in network for network in trusted)

    if not trusted or not forwarded_for or not is_trusted(peer):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if _address(hop) is None:
            return peer  # a malformed list: believe nobody in it
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer  # every hop is a proxy of ours: the first one


class ForwardedFor:
    """WSGI middleware setting ``REMOTE_ADDR`` from ``X-Forwarded-For`` of trusted proxies."""

    def __init__(self, app: Callable[..., Iterable[bytes]], trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = [ipaddress.ip_network(network, strict=False) for network in trusted]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        peer = environ.get("REMOTE_ADDR", "")
        environ[PEER_KEY] = peer
        environ["REMOTE_ADDR"] = client_address(
            peer, environ.get("HTTP_X_FORWARDED_FOR"), self.trusted
        )
        return self.app(environ, start_response)


def peer_address(environ: dict[str, Any]) -> str | None:
    """The address of whoever opened the connection (the proxy, behind one)."""
    found = environ.get(PEER_KEY, environ.get("REMOTE_ADDR"))
    return found if isinstance(found, str) else None
