"""An append-only journal of framed, checksummed records: what makes a store crash-safe.

Each frame is ``MAGIC | payload length (u32) | crc32 (u32) | payload``; the
payload is a JSON header, then raw vector bytes. :meth:`Journal.append`
fsyncs before it returns, so an acknowledged write survives kill -9. On open,
the frames are read back in order and the first torn or damaged frame (a crash
mid-write) is cut off with everything after it, leaving the frames before it
intact.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAGIC = b"TFJ1"
_HEAD = struct.Struct("<4sII")
_HEADER_LEN = struct.Struct("<I")


def encode_frame(header: dict, vectors: np.ndarray | None = None) -> bytes:
    """One frame: the JSON header and (optionally) a vector matrix."""
    body = json.dumps(header, separators=(",", ":")).encode()
    data = b"" if vectors is None else np.ascontiguousarray(vectors).tobytes()
    payload = _HEADER_LEN.pack(len(body)) + body + data
    return _HEAD.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes) -> tuple[dict, bytes]:
    (length,) = _HEADER_LEN.unpack_from(payload)
    start = _HEADER_LEN.size
    return json.loads(payload[start : start + length]), payload[start + length :]


class Journal:
    """Frames appended to one file; read back whole at open."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.touch(exist_ok=True)
        self._handle = None

    def replay(self) -> Iterator[tuple[dict, bytes]]:
        """Yield ``(header, vector bytes)`` for every intact frame; cut the file after the last one."""
        good = 0
        with self.path.open("rb") as handle:
            while True:
                head = handle.read(_HEAD.size)
                if len(head) < _HEAD.size:
                    break
                magic, length, checksum = _HEAD.unpack(head)
                payload = handle.read(length) if magic == MAGIC else b""
                if magic != MAGIC or len(payload) < length or zlib.crc32(payload) != checksum:
                    break
                good = handle.tell()
                yield decode_payload(payload)
        size = self.path.stat().st_size
        if size != good:
            log.warning("%s: cutting %d bytes of a torn write after the last intact frame", self.path, size - good)
            with self.path.open("r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())

    def append(self, header: dict, vectors: np.ndarray | None = None) -> None:
        """Write one frame and fsync it: when this returns, the frame survives a crash."""
        if self._handle is None:
            self._handle = self.path.open("ab")
        start = self._handle.tell()
        try:
            self._handle.write(encode_frame(header, vectors))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except BaseException:
            # A failed write (disk full) must not leave a torn frame that later frames would follow.
            self._handle.close()
            self._handle = None
            with self.path.open("r+b") as handle:
                handle.truncate(start)
            raise

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
