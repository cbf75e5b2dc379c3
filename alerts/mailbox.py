"""The demo's local SMTP server: every e-mail it receives becomes a ``.eml`` file.

``MailboxServer(folder).start()`` listens on 127.0.0.1 (a free port by default, see
``.port``) with aiosmtpd in a background thread and writes each message, as the raw
RFC 5322 bytes it received, to ``<folder>/<YYYYmmdd-HHMMSS>-<n>.eml`` (local time, so the
names match the times in the e-mails). Any mail program opens these files.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller

log = logging.getLogger("cityops.alerts.mailbox")

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class LoopbackController(Controller):
    """aiosmtpd's Controller that also works with ``port=0``: the port the system picked
    is read back from the listening socket before the controller's own readiness probe."""

    def _trigger_server(self) -> None:
        sockets = getattr(self.server, "sockets", None)  # asyncio.Server, typed as Abstract
        if self.port == 0 and sockets:
            self.port = int(sockets[0].getsockname()[1])
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _FolderHandler:
    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        try:
            path = self._write(data)
        except OSError as exc:
            log.error("mailbox could not write to %s: %s", self._folder, exc)
            return "451 Requested action aborted: local error in processing"
        log.info("mailbox: %s for %s", path.name, ", ".join(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def _write(self, data: bytes) -> Path:
        stamp = datetime.now(LOCAL_TZ).strftime("%Y%m%d-%H%M%S")
        self._folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            while True:
                self._count += 1
                path = self._folder / f"{stamp}-{self._count}.eml"
                if path.exists():  # left by an earlier run
                    continue
                partial = path.with_name(path.name + ".part")
                with partial.open("wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                try:
                    # A reader never sees half a message, and link() never overwrites.
                    os.link(partial, path)
                except FileExistsError:
                    continue
                finally:
                    partial.unlink()
                return path


class MailboxServer:
    """A local SMTP server writing a folder of .eml files. ``start()`` returns once it
    answers; ``stop()`` closes it."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.folder = folder
        self.host = host
        self._requested_port = port
        self._controller: LoopbackController | None = None

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("the mailbox server is not running: call start() first")
        return int(self._controller.port)

    def start(self) -> None:
        if self._controller is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        controller = LoopbackController(
            _FolderHandler(self.folder),
            hostname=self.host,
            port=self._requested_port,
            enable_SMTPUTF8=True,
            ready_timeout=10.0,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is None:
            return
        controller, self._controller = self._controller, None
        controller.stop()

    def __enter__(self) -> MailboxServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
