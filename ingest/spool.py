"""The local disk spool: batches the store could not take, kept in order on disk.

The ingest worker acknowledges MQTT messages once their batch is in the store or here, so
:meth:`DiskSpool.append` returns only after the batch is fsync'd. The spool drains oldest
first (:meth:`~DiskSpool.peek_batch`, then :meth:`~DiskSpool.commit` once the store has it).

On disk: append-only segment files ``<first batch id>.seg``, each a run of records::

    b"CS" | payload length (u32) | CRC-32 of batch id + payload (u32) | batch id (u64) | payload

The payload is a JSON array of points (measurement, tags, fields, ts in epoch ms: the
stores' precision). ``committed`` holds the id of the last batch the store accepted; a
segment whose batches are all committed is deleted. A torn or corrupt record (a crash in
the middle of a write) fails the length or CRC check when the folder is opened: it is
logged and skipped with the rest of its segment, and later appends start a new segment.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.errors import PermanentError, RetryableError
from core.ports import DeadLetterStore, Store
from core.settings import Settings
from core.types import DeadLetter, Point

log = logging.getLogger("cityops.ingest")

MAGIC = b"CS"
HEADER = struct.Struct(">2sIIQ")  # magic, payload length, CRC-32, batch id
SEGMENT_SUFFIX = ".seg"
COMMITTED_FILE = "committed"
LOCK_FILE = "lock"  # flock'd while a worker owns the folder
SEGMENT_BYTES = 8 * 1024 * 1024  # a new segment after this many bytes
MAX_PAYLOAD = 1 << 30  # a longer length field can only be garbage
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class SpoolInUseError(RuntimeError):
    """Another process holds the spool folder: two workers must never share one."""


class SpoolFullError(RetryableError):
    """Appending would pass ``max_bytes``; nothing was written. Do not acknowledge."""


# -- encoding (pure) ----------------------------------------------------------------------


def encode_points(points: Sequence[Point]) -> bytes:
    """Points as a compact JSON array; ts as whole epoch milliseconds."""
    rows = [
        {
            "m": point.measurement,
            "t": dict(point.tags),
            "f": dict(point.fields),
            "ts": (point.ts - _EPOCH) // _MS,
        }
        for point in points
    ]
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_points(payload: bytes) -> list[Point]:
    """The inverse of :func:`encode_points`: aware UTC timestamps."""
    rows: list[dict[str, Any]] = json.loads(payload.decode("utf-8"))
    return [
        Point(
            measurement=row["m"],
            tags={str(k): str(v) for k, v in row["t"].items()},
            fields={str(k): float(v) for k, v in row["f"].items()},
            ts=_EPOCH + int(row["ts"]) * _MS,
        )
        for row in rows
    ]


def encode_record(batch_id: int, payload: bytes) -> bytes:
    checksum = zlib.crc32(payload, zlib.crc32(batch_id.to_bytes(8, "big")))
    return HEADER.pack(MAGIC, len(payload), checksum, batch_id) + payload


def _read_record(data: bytes, offset: int) -> tuple[int, bytes] | None:
    """(batch id, payload) of the record at ``offset``; None when it is torn or corrupt."""
    end_of_header = offset + HEADER.size
    if end_of_header > len(data):
        return None
    magic, length, checksum, batch_id = HEADER.unpack_from(data, offset)
    if magic != MAGIC or length > MAX_PAYLOAD or end_of_header + length > len(data):
        return None
    payload = data[end_of_header : end_of_header + length]
    if zlib.crc32(payload, zlib.crc32(batch_id.to_bytes(8, "big"))) != checksum:
        return None
    return batch_id, payload


# -- the spool ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    batch_id: int
    segment: Path
    offset: int
    size: int  # the whole record, header included


class DiskSpool:
    """Batches on disk, oldest first. One thread uses it (the ingest worker's)."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        warn_fraction: float = 0.8,
        segment_bytes: int = SEGMENT_BYTES,
    ) -> None:
        if max_bytes < 1 or not 0 < warn_fraction <= 1 or segment_bytes < 1:
            raise ValueError(
                f"need max_bytes >= 1, 0 < warn_fraction <= 1, segment_bytes >= 1: "
                f"{max_bytes}, {warn_fraction}, {segment_bytes}"
            )
        self.folder = folder
        self.max_bytes = max_bytes
        self.warn_bytes = warn_fraction * max_bytes
        self.segment_bytes = segment_bytes
        self._entries: deque[_Entry] = deque()
        self._bytes = 0
        self._warned = False
        self._active: Path | None = None  # the segment appends go to; never one found on open
        self._committed = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_folder(folder)
        self._load()
        self._next_id = max([self._committed, *(e.batch_id for e in self._entries)]) + 1
        if self._entries:
            log.info(
                "disk spool %s holds %d batches (%d bytes) from before; draining them first",
                folder,
                len(self._entries),
                self._bytes,
            )

    def close(self) -> None:
        """Release the folder lock; the spool's batches stay on disk for the next start."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @property
    def bytes_used(self) -> int:
        """Bytes of the batches not yet committed (the limit applies to these)."""
        return self._bytes

    @property
    def batches(self) -> int:
        return len(self._entries)

    def append(self, points: Sequence[Point]) -> None:
        """Write one batch and fsync it. Raises SpoolFullError (nothing written) when it
        would pass ``max_bytes``, OSError when the disk fails."""
        record = encode_record(self._next_id, encode_points(points))
        if self._bytes + len(record) > self.max_bytes:
            raise SpoolFullError(
                f"disk spool {self.folder} is full: {self._bytes} of {self.max_bytes} bytes "
                f"used, a batch of {len(record)} bytes does not fit"
            )
        segment = self._segment_for_append()
        try:
            offset = self._write_record(segment, record)
        except BaseException:
            # A torn tail may be left: it fails its check on the next open. Appends go to a
            # new segment (with a new name: this id is skipped), so none lands behind it.
            self._active = None
            self._next_id += 1
            raise
        self._entries.append(_Entry(self._next_id, segment, offset, len(record)))
        self._next_id += 1
        self._bytes += len(record)
        if self._bytes > self.warn_bytes and not self._warned:
            self._warned = True
            log.warning(
                "disk spool %s is %.0f%% full (%d of %d bytes): the store has been down "
                "for a while; when it is full, messages stay unacknowledged in the broker",
                self.folder,
                100 * self._bytes / self.max_bytes,
                self._bytes,
                self.max_bytes,
            )

    def peek_batch(self) -> tuple[int, list[Point]] | None:
        """The oldest batch not yet committed, or None when the spool is empty."""
        while self._entries:
            entry = self._entries[0]
            data = self._read(entry)
            record = _read_record(data, 0) if data is not None else None
            if record is not None and record[0] == entry.batch_id:
                return entry.batch_id, decode_points(record[1])
            # Checked when the spool was opened or written: the disk changed under us.
            log.error(
                "disk spool batch %d in %s is unreadable; skipped", entry.batch_id, entry.segment
            )
            self.commit(entry.batch_id)
        return None

    def commit(self, batch_id: int) -> None:
        """The store has the oldest batch: forget it (and its segment once all are done)."""
        if not self._entries or self._entries[0].batch_id != batch_id:
            raise ValueError(f"batch {batch_id} is not the oldest batch in the spool")
        entry = self._entries.popleft()
        self._bytes -= entry.size
        self._committed = batch_id
        self._write_committed(batch_id)
        if not self._entries or self._entries[0].segment != entry.segment:
            if self._active == entry.segment:
                self._active = None
            entry.segment.unlink(missing_ok=True)
        if self._bytes <= self.warn_bytes:
            self._warned = False

    # -- internals ---------------------------------------------------------------------

    def _segment_for_append(self) -> Path:
        active = self._active
        if active is not None and active.exists() and active.stat().st_size < self.segment_bytes:
            return active
        self._active = self.folder / f"{self._next_id:020d}{SEGMENT_SUFFIX}"
        self._active.touch()
        _fsync_dir(self.folder)  # the new name must survive a crash with its data
        return self._active

    @staticmethod
    def _write_record(segment: Path, record: bytes) -> int:
        """Append and fsync; returns the record's offset in the segment."""
        fd = os.open(segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            offset = os.fstat(fd).st_size
            written = os.write(fd, record)
            if written != len(record):
                raise OSError(f"short write to {segment}: {written} of {len(record)} bytes")
            os.fsync(fd)
            return offset
        finally:
            os.close(fd)

    def _read(self, entry: _Entry) -> bytes | None:
        try:
            with entry.segment.open("rb") as file:
                file.seek(entry.offset)
                return file.read(entry.size)
        except OSError:
            return None

    def _write_committed(self, batch_id: int) -> None:
        target = self.folder / COMMITTED_FILE
        temporary = target.with_suffix(".tmp")
        with temporary.open("w", encoding="ascii") as file:
            file.write(f"{batch_id}\n")
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(target)
        _fsync_dir(self.folder)

    def _load(self) -> None:
        committed_file = self.folder / COMMITTED_FILE
        if committed_file.exists():
            text = committed_file.read_text(encoding="ascii").strip()
            try:
                self._committed = int(text)
            except ValueError:
                log.error(
                    "disk spool %s: unreadable %s (%r); replaying all",
                    self.folder,
                    COMMITTED_FILE,
                    text,
                )
        for segment in sorted(self.folder.glob(f"*{SEGMENT_SUFFIX}")):
            self._load_segment(segment)

    def _load_segment(self, segment: Path) -> None:
        data = segment.read_bytes()
        offset = 0
        pending = 0
        while offset < len(data):
            record = _read_record(data, offset)
            if record is None:
                log.warning(
                    "disk spool segment %s: torn or corrupt record at byte %d; "
                    "its last %d bytes skipped",
                    segment,
                    offset,
                    len(data) - offset,
                )
                break
            batch_id, payload = record
            size = HEADER.size + len(payload)
            if batch_id > self._committed:
                self._entries.append(_Entry(batch_id, segment, offset, size))
                self._bytes += size
                pending += 1
            offset += size
        if pending == 0:
            segment.unlink()  # every batch in it was committed (or it held none whole)


def point_json(point: Point) -> bytes:
    """One point as a JSON object: what a dead letter from the spool holds."""
    return encode_points([point])[1:-1]


def drain_oldest(
    spool: DiskSpool, store: Store, dead_letters: DeadLetterStore, now: datetime
) -> int:
    """Write the oldest spooled batch to ``store`` and commit it; returns how many points
    were dead-lettered because the store refused them (PermanentError: they are retried one
    by one; a point has no MQTT payload, so its letter has topic ``spool/<measurement>``
    and the point as JSON). Raises RetryableError (or an adapter's bug) with the batch left
    in the spool; stores are idempotent, so the retry duplicates nothing in the store, but
    a letter put before such a failure may be kept twice."""
    head = spool.peek_batch()
    if head is None:
        return 0
    batch_id, points = head
    refused: list[tuple[Point, str]] = []
    try:
        store.write(points)
    except PermanentError as exc:
        log.warning("store refused part of a spooled batch (%s); point by point", exc)
        for point in points:
            try:
                store.write([point])
            except PermanentError as one:
                refused.append((point, f"store refused the reading: {one}"))
    for point, reason in refused:
        topic = f"spool/{point.measurement}"
        dead_letters.put(DeadLetter(now, topic, point_json(point), reason))
        log.info("dead letter from the disk spool (%s): %s", topic, reason)
    spool.commit(batch_id)
    return len(refused)


def _lock_folder(folder: Path) -> int:
    """An exclusive lock on ``folder/lock`` for this process's life (released by the kernel
    when it ends, even by kill -9)."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolInUseError(
            f"disk spool {folder} is in use by another ingest worker; give each worker "
            "its own ingest.spool_dir (CITYOPS_INGEST__SPOOL_DIR)"
        ) from None
    return fd


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_spool(settings: Settings) -> DiskSpool | None:
    """The spool ``ingest.spool_dir`` names (relative to the config file), None if off."""
    ingest = settings.ingest
    if ingest.spool_dir is None:
        return None
    return DiskSpool(settings.path(ingest.spool_dir), max_bytes=ingest.spool_max_mb * 1024 * 1024)
