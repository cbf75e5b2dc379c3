"""The deployment's secret key: it signs the dashboard's session cookies and, through a key
derived from it (alerts/links.py), the acknowledge links of alert e-mails. Here and not in
the dashboard so that the alert engine, which has no Dash, signs links the dashboard can
check.

``CITYOPS_DASHBOARD__AUTH__SECRET_KEY`` (``dashboard.auth.secret_key``) wins; else the key
file ``dashboard.auth.secret_key_file``, created (0600, 32 random bytes as hex) by whichever
process starts first. Several processes share the file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.errors import ConfigError
from core.settings import Settings

MIN_KEY_BYTES = 16


def load_secret(settings: Settings) -> bytes:
    """The key from the environment (settings) or the key file, created when missing.

    Raises ConfigError when the given key is too short or the file cannot be read or made."""
    auth = settings.dashboard.auth
    if auth.secret_key is not None:
        value = auth.secret_key.get_secret_value().encode()
        if len(value) < MIN_KEY_BYTES:
            raise ConfigError("dashboard.auth.secret_key", "***", "must be at least 16 bytes")
        return value
    path = settings.path(auth.secret_key_file)
    try:
        return _read_or_create_key(path)
    except OSError as exc:
        raise ConfigError(
            "dashboard.auth.secret_key_file", str(path), f"cannot be read or created ({exc})"
        ) from exc


def _read_or_create_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: link() fails when the
        # file exists, so of two processes starting together one key wins, and nobody
        # reads a file that is created but not yet written.
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it a moment ago
        finally:
            draft.unlink(missing_ok=True)
    value = path.read_text().strip().encode()
    if len(value) < MIN_KEY_BYTES:
        raise OSError(f"the key in {path} is shorter than {MIN_KEY_BYTES} bytes")
    return value
