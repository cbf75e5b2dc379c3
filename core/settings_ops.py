"""The ``logging`` section and the types of the self-monitoring settings (the metrics ports
are in their services' sections: ``ingest.metrics_port``, ``alerts.metrics_port``,
``dashboard.metrics_allow``). Design: docs/design/016-self-monitoring.md."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

from core.settings_base import _Section

LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ValueError("must be an address or a network like 10.0.0.0/8") from None


# An IPv4 or IPv6 network ("10.0.0.0/8", "::1/128"); a bare address means that one host.
Cidr = Annotated[str, AfterValidator(_network)]


class LoggingSettings(_Section):
    # text: one readable line per record (a terminal). json: one JSON object per line
    # (ts, level, logger, msg, service, correlation_id, exc), for journald and shippers.
    format: Literal["text", "json"] = "text"
    # DEBUG, INFO, WARNING or ERROR; `--verbose` on a command means DEBUG.
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = "INFO"
