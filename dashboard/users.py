"""Users of the dashboard: password hashes and the users tables (throttling of sign-in
attempts: dashboard/throttle.py).

No Dash here: the sign-in page, the session and ``cityops users`` all call this module.
A user has a role and the unit codes they may see (``dashboard.access`` turns those into
"this unit and its descendants"). Passwords are hashed with stdlib scrypt, so no extra
dependency is needed on an air-gapped server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Final

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from core.clock import SystemClock
from core.db import UtcDateTime
from core.errors import RetryableError
from core.migrate import Step, migrate
from core.ports import Clock

ROLES: Final = ("admin", "operator", "leader", "viewer")
LANGUAGES: Final = ("vi", "en")
MIN_PASSWORD_LENGTH: Final = 10

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
# Parameters read back from a stored hash are bounded, so a tampered row cannot make
# one login take minutes or gigabytes.
_MAX_N: Final = 2**20
_MAX_MEMORY: Final = 2**27  # 128 MiB: 8 times what the default parameters take

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


class PasswordTooShortError(ValueError):
    def __init__(self) -> None:
        super().__init__(
            f"mật khẩu phải có ít nhất {MIN_PASSWORD_LENGTH} ký tự / "
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
        )


class UserExistsError(ValueError):
    """Adding a username that is taken."""


# ---------------------------------------------------------------------------- passwords


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # maxmem: 128·n·r bytes are needed; OpenSSL's default ceiling (32 MiB) is below
    # what stronger parameters accepted by verify_password take.
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=2 * _MAX_MEMORY
    )


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt_b64$hash_b64`` with a fresh 16-byte salt.

    Raises PasswordTooShortError below MIN_PASSWORD_LENGTH characters."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordTooShortError
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded``; False also for a malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return False
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    if 128 * n * r > _MAX_MEMORY or not salt or not 16 <= len(expected) <= 64:
        return False
    try:
        actual = _scrypt(password, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):  # OpenSSL refused the parameters
        return False
    return hmac.compare_digest(actual, expected)


@cache
def _dummy_hash() -> str:
    """A hash to check unknown and disabled users against, so they take as long as others."""
    return hash_password(secrets.token_urlsafe(24))


# ---------------------------------------------------------------------------- tables

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", Text, nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("language", Text, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("email", Text, nullable=True),  # v2: where reports and alert e-mails go
)

user_units = Table(
    "user_units",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("unit_code", Text, nullable=False),
    PrimaryKeyConstraint("user_id", "unit_code"),
)


def _v1_users_and_units(connection: Connection) -> None:
    # The tables as version 1 created them, spelled out: the module-level tables above
    # follow the newest version, and a released step must never change.
    v1 = MetaData()
    Table(
        "users",
        v1,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("username", Text, nullable=False, unique=True),
        Column("password_hash", Text, nullable=False),
        Column("role", Text, nullable=False),
        Column("language", Text, nullable=False),
        Column("disabled", Boolean, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
    )
    Table(
        "user_units",
        v1,
        Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        Column("unit_code", Text, nullable=False),
        PrimaryKeyConstraint("user_id", "unit_code"),
    )
    v1.create_all(connection)


def _v2_email(connection: Connection) -> None:
    connection.execute(text("ALTER TABLE users ADD COLUMN email TEXT"))


login_throttle = Table(
    "login_throttle",
    metadata,
    Column("username", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("failures", Text, nullable=False),  # JSON list of epoch seconds, oldest first
    Column("locked_until", Float, nullable=True),  # epoch seconds
    Column("last_at", Float, nullable=False),  # the last failure, to forget stale rows
    PrimaryKeyConstraint("username", "address"),
)


def _v3_login_throttle(connection: Connection) -> None:
    # The sign-in throttle shared by every dashboard process (dashboard/throttle_sql.py).
    v3 = MetaData()
    Table(
        "login_throttle",
        v3,
        Column("username", Text, nullable=False),
        Column("address", Text, nullable=False),
        Column("failures", Text, nullable=False),
        Column("locked_until", Float, nullable=True),
        Column("last_at", Float, nullable=False),
        PrimaryKeyConstraint("username", "address"),
    )
    v3.create_all(connection)


MIGRATIONS: Final[Sequence[Step]] = (_v1_users_and_units, _v2_email, _v3_login_throttle)
COMPONENT: Final = "users"


# ---------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: str
    units: tuple[str, ...]
    language: str
    disabled: bool
    created_at: datetime
    email: str | None = None  # the weekly report goes here (a leader's)


def normalise_username(username: str) -> str:
    """Lower case, trimmed; raises ValueError naming the value when it cannot be a username."""
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise ValueError(
            "username must be 2-64 characters of a-z 0-9 . _ @ -, starting with a letter "
            f"or digit: {username!r}"
        )
    return name


class UserStore:
    """Users in the SQL state database. Brings its tables up to date on construction.

    Database errors become RetryableError (the database is down or busy)."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self._engine = engine
        self._clock = clock or SystemClock()
        try:
            migrate(engine, COMPONENT, MIGRATIONS, self._clock)
        except SQLAlchemyError as exc:
            raise RetryableError(f"the users tables could not be migrated: {exc}") from exc

    def add(
        self,
        username: str,
        password: str,
        role: str,
        units: Iterable[str],
        language: str = "vi",
        email: str | None = None,
    ) -> User:
        """Add an enabled user. Raises ValueError naming a bad role, language, username or
        an empty unit list (only an admin may have none), PasswordTooShortError, and
        UserExistsError."""
        name = normalise_username(username)
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}: {role!r}")
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}: {language!r}")
        if email is not None and not _EMAIL.fullmatch(email):
            raise ValueError(f"email must be an e-mail address: {email!r}")
        codes = tuple(sorted({code.strip() for code in units}))
        if not codes and role != "admin":
            raise ValueError(f"a {role} needs at least one unit code")
        password_hash = hash_password(password)
        created_at = self._clock.now()
        try:
            with self._engine.begin() as connection:
                user_id = connection.execute(
                    insert(users).returning(users.c.id),
                    {
                        "username": name,
                        "password_hash": password_hash,
                        "role": role,
                        "language": language,
                        "disabled": False,
                        "created_at": created_at,
                        "email": email,
                    },
                ).scalar_one()
                if codes:
                    connection.execute(
                        insert(user_units),
                        [{"user_id": user_id, "unit_code": code} for code in codes],
                    )
        except IntegrityError as exc:
            raise UserExistsError(f"a user with this name exists already: {name!r}") from exc
        except SQLAlchemyError as exc:
            raise RetryableError(f"user {name!r} could not be added: {exc}") from exc
        return User(user_id, name, role, codes, language, False, created_at, email)

    def _read(self, username: str | None) -> list[tuple[User, str]]:
        query = select(users).order_by(users.c.username)
        if username is not None:
            query = query.where(users.c.username == username)
        try:
            with self._engine.connect() as connection:
                rows = connection.execute(query).all()
                unit_query = select(user_units).order_by(user_units.c.unit_code)
                if username is not None:
                    unit_query = unit_query.where(user_units.c.user_id.in_([r.id for r in rows]))
                units_of: dict[int, list[str]] = {}
                for link in connection.execute(unit_query):
                    units_of.setdefault(link.user_id, []).append(link.unit_code)
        except SQLAlchemyError as exc:
            raise RetryableError(f"users could not be read: {exc}") from exc
        return [
            (
                User(
                    id=row.id,
                    username=row.username,
                    role=row.role,
                    units=tuple(units_of.get(row.id, [])),
                    language=row.language,
                    disabled=bool(row.disabled),
                    created_at=row.created_at,
                    email=row.email,
                ),
                row.password_hash,
            )
            for row in rows
        ]

    def _find(self, username: str) -> tuple[User, str] | None:
        try:
            name = normalise_username(username)
        except ValueError:
            return None
        found = self._read(name)
        return found[0] if found else None

    def get(self, username: str) -> User | None:
        found = self._find(username)
        return None if found is None else found[0]

    def list(self) -> list[User]:
        """Every user, by username."""
        return [user for user, _ in self._read(None)]

    def disable(self, username: str) -> bool:
        """Disable a user (kept for the record); False when there is no such user."""
        try:
            name = normalise_username(username)
        except ValueError:
            return False
        try:
            with self._engine.begin() as connection:
                result = connection.execute(
                    update(users).where(users.c.username == name).values(disabled=True)
                )
        except SQLAlchemyError as exc:
            raise RetryableError(f"user {name!r} could not be disabled: {exc}") from exc
        return result.rowcount > 0

    def verify(self, username: str, password: str) -> User | None:
        """The user when the password matches and the user is enabled, else None.

        Unknown and disabled users are checked against a dummy hash, so the answer takes
        about as long and does not tell which usernames exist."""
        found = self._find(username)
        if found is None or found[0].disabled:
            verify_password(password, _dummy_hash())
            return None
        user, password_hash = found
        return user if verify_password(password, password_hash) else None
