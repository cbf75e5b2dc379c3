"""Password hashes, the login throttle and access by unit, without a database."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.settings import Label, LevelSettings
from dashboard.access import Access
from dashboard.throttle import LoginThrottle
from dashboard.users import (
    PasswordTooShortError,
    User,
    hash_password,
    verify_password,
)
from layers.levels import Hierarchy
from tests.conftest import FakeClock

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "mật-khẩu-đủ-dài"
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------- passwords


def test_hash_round_trip_and_wrong_password() -> None:
    encoded = hash_password(PASSWORD)
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD + "x", encoded)
    assert not verify_password(PASSWORD.upper(), encoded)


def test_hash_format_names_parameters_with_a_fresh_salt() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    scheme, n, r, p, salt, digest = first.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32
    assert first != second  # salted
    assert first.split("$")[4] != second.split("$")[4]


def test_parameters_are_read_from_the_stored_hash() -> None:
    # A hash made with other parameters (older or stronger) still verifies.
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**10, r=4, p=2, dklen=32)
    encoded = (
        f"scrypt$1024$4$2${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )
    assert verify_password(PASSWORD, encoded)
    assert not verify_password(PASSWORD, encoded.replace("$1024$", "$2048$"))


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "plain-text-password",
        "bcrypt$16384$8$1$AAAA$AAAA",
        "scrypt$16384$8$1$not base64!$AAAA",
        "scrypt$abc$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,
        "scrypt$16383$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # n not a power of 2
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # n too large
        "scrypt$1048576$32$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 44,  # 4 GiB of memory
    ],
)
def test_malformed_hash_never_verifies(encoded: str) -> None:
    assert verify_password(PASSWORD, encoded) is False


def test_short_password_is_refused_with_a_clear_message() -> None:
    with pytest.raises(PasswordTooShortError, match="at least 10 characters"):
        hash_password("123456789")
    assert verify_password("0123456789", hash_password("0123456789"))


# ---------------------------------------------------------------------------- throttle

U, A = "nguyenvana", "10.0.0.7"


def throttle(clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(clock, max_failures=5, window=timedelta(minutes=15))


def test_five_failures_lock_for_fifteen_minutes_then_expire(clock: FakeClock) -> None:
    guard = throttle(clock)
    for _ in range(4):
        guard.record_failure(U, A)
        clock.advance(60)
    assert not guard.is_locked(U, A)
    guard.record_failure(U, A)
    assert guard.locked_for(U, A) == timedelta(minutes=15)
    assert guard.is_locked(U.upper(), A)  # the same account, however typed
    assert not guard.is_locked(U, "10.0.0.8")  # another address is not locked
    assert not guard.is_locked("tranthib", A)  # nor another user from the same address
    clock.advance(15 * 60 - 1)
    assert guard.is_locked(U, A)
    clock.advance(1)
    assert not guard.is_locked(U, A)
    # After the lock the count starts again: one failure does not re-lock.
    guard.record_failure(U, A)
    assert not guard.is_locked(U, A)


def test_failures_older_than_the_window_do_not_count(clock: FakeClock) -> None:
    guard = throttle(clock)
    for _ in range(4):
        guard.record_failure(U, A)
    clock.advance(15 * 60)  # the four fall out of the window
    guard.record_failure(U, A)
    assert not guard.is_locked(U, A)
    for _ in range(3):
        guard.record_failure(U, A)
    assert not guard.is_locked(U, A)
    guard.record_failure(U, A)
    assert guard.is_locked(U, A)


def test_failures_while_locked_do_not_extend_the_lock(clock: FakeClock) -> None:
    guard = throttle(clock)
    for _ in range(5):
        guard.record_failure(U, A)
    clock.advance(10 * 60)
    guard.record_failure(U, A)
    assert guard.locked_for(U, A) == timedelta(minutes=5)


def test_success_resets_the_count(clock: FakeClock) -> None:
    guard = throttle(clock)
    for _ in range(4):
        guard.record_failure(U, A)
    guard.record_success(U, A)
    for _ in range(4):
        guard.record_failure(U, A)
    assert not guard.is_locked(U, A)
    guard.record_failure(U, A)
    assert guard.is_locked(U, A)


def test_memory_is_bounded_by_forgetting_stale_pairs(clock: FakeClock) -> None:
    guard = LoginThrottle(clock, max_keys=3)
    for number in range(3):
        guard.record_failure(f"user{number}", A)
    for _ in range(5):
        guard.record_failure("locked", A)  # a fourth key while the dict is full
    clock.advance(16 * 60)
    guard.record_failure("new", A)
    assert len(guard._state) <= 3
    assert not guard.is_locked("locked", A)


# ---------------------------------------------------------------------------- access


@pytest.fixture(scope="module")
def hierarchy() -> Hierarchy:
    levels = [
        LevelSettings(name="province", code_length=2, label=Label(vi="Tỉnh", en="Province")),
        LevelSettings(name="commune", code_length=5, label=Label(vi="Xã", en="Commune")),
    ]
    return Hierarchy.from_csv(levels, REPO / "layers/data/admin_codes_2025.csv")


def user(role: str, units: tuple[str, ...], disabled: bool = False) -> User:
    return User(1, "a", role, units, "vi", disabled, T0)


def test_a_user_of_da_nang_sees_its_communes_only(hierarchy: Hierarchy) -> None:
    access = Access.for_user(hierarchy, user("operator", ("48",)))
    assert access.can_see("48")
    assert access.can_see("20194")  # Phường Hải Vân, Đà Nẵng
    assert not access.can_see("01")  # Hà Nội
    assert not access.can_see("00004")  # Phường Ba Đình, Hà Nội
    assert not access.can_see("unassigned")
    assert not access.can_see("99999")
    assert access.visible(["01", "20194", "00004", "48"]) == ["20194", "48"]
    seen = access.visible(unit.code for unit in hierarchy.units_at("commune"))
    assert seen == [unit.code for unit in hierarchy.units_at("commune", parent="48")]
    assert 0 < len(seen) < 200


def test_a_commune_officer_sees_the_commune_not_its_province(hierarchy: Hierarchy) -> None:
    access = Access(hierarchy, ["20194"])
    assert access.can_see("20194")
    assert not access.can_see("48")
    assert hierarchy.get("20197") is not None
    assert not access.can_see("20197")  # Liên Chiểu, its neighbour in Đà Nẵng


def test_admin_sees_everything_and_disabled_nothing(hierarchy: Hierarchy) -> None:
    admin = Access.for_user(hierarchy, user("admin", ()))
    codes = ["01", "00004", "48", "20194", "unassigned"]
    assert admin.visible(codes) == codes
    assert Access.for_user(hierarchy, user("viewer", ())).visible(codes) == []
    assert Access.for_user(hierarchy, user("admin", (), disabled=True)).visible(codes) == []
    assert Access.for_user(hierarchy, user("leader", ("48",), disabled=True)).visible(codes) == []
