"""The dedupe index: every (workspace, event id) in the log, mapped to where the event lies.

It lives in LMDB beside the SQLite file, not in SQLite: a unique index on random ids dirties one
B-tree page per event, and SQLite's WAL writes every dirty page on every commit (15-30k rows/s
measured here, against 200k+ for this design). The index is derived data: the log is the truth.
Each write transaction records the last log `seq` it covers (the checkpoint); on start, batches
after the checkpoint are indexed again, and an index that is ahead of the log is rebuilt. So LMDB
runs without fsync, and a crash between the SQLite commit and the LMDB commit loses nothing.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import lmdb

from herald.errors import StoreUnavailable

MAP_SIZE = 1 << 40  # address space only: LMDB files grow as needed, up to 1 TiB
_LOCATION = struct.Struct(">QI")  # (batch seq, position in batch)
_CHECKPOINT = b"checkpoint"
_STORE_ID = b"store_id"


def index_key(workspace_id: int, event_id: bytes) -> bytes:
    return workspace_id.to_bytes(4, "big") + event_id


pack_location = _LOCATION.pack  # (seq, position) -> 12 bytes


class IdIndex:
    """An exact set of event ids with their location; one writer, any number of readers."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        try:
            self._env = lmdb.open(
                str(path),
                map_size=MAP_SIZE,
                max_dbs=2,
                sync=False,  # the log is fsynced; this index is rebuilt from it after a crash
                metasync=False,
                # No writemap: with it LMDB sizes the file to MAP_SIZE (sparse, but a copy of
                # it is not); without it the file holds only what is written.
                writemap=False,
                readonly=readonly,
                create=not readonly,
            )
        except lmdb.Error as exc:
            raise StoreUnavailable(f"Cannot open the event id index at {path}: {exc}") from exc
        self._ids = self._env.open_db(b"ids", create=not readonly)
        self._meta = self._env.open_db(b"meta", create=not readonly)

    def close(self) -> None:
        self._env.close()

    def checkpoint(self) -> int:
        with self._env.begin(db=self._meta) as txn:
            value = txn.get(_CHECKPOINT)
        return int(value) if value is not None else 0

    def store_id(self) -> str | None:
        with self._env.begin(db=self._meta) as txn:
            value = txn.get(_STORE_ID)
        return value.decode() if value is not None else None

    def reset(self, store_id: str) -> None:
        """Empty the index, to be rebuilt from the log of store `store_id`."""
        with self._env.begin(write=True) as txn:
            txn.drop(self._ids, delete=False)
            txn.put(_STORE_ID, store_id.encode(), db=self._meta)
            txn.put(_CHECKPOINT, b"0", db=self._meta)

    def locate(self, workspace_id: int, event_id: bytes) -> tuple[int, int] | None:
        """(seq, position) of the event, or None when it is not in the log."""
        with self._env.begin(db=self._ids) as txn:
            value = txn.get(index_key(workspace_id, event_id))
        return None if value is None else _LOCATION.unpack(value)

    def write(self) -> IdWriter:
        return IdWriter(self._env.begin(write=True, db=self._ids), self._meta)


class IdWriter:
    """One write transaction: insert ids, learn which already existed, then commit or abort."""

    def __init__(self, txn: Any, meta_db: Any) -> None:
        self._txn = txn
        self._meta = meta_db

    def insert_all_new(self, keys: list[bytes], values: list[bytes]) -> bool:
        """Insert every key; False (with nothing to undo but `abort`) if any already existed."""
        items = zip(keys, values, strict=True)
        consumed, added = self._txn.cursor().putmulti(items, overwrite=False)
        return bool(added == consumed == len(keys))

    def insert_if_new(self, key: bytes) -> bool:
        """Insert `key` with a placeholder location; False if it already existed."""
        return bool(self._txn.put(key, b"", overwrite=False))

    def set_locations(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        self._txn.cursor().putmulti(items, overwrite=True)

    def set_checkpoint(self, seq: int) -> None:
        self._txn.put(_CHECKPOINT, str(seq).encode(), db=self._meta)

    def commit(self) -> None:
        self._txn.commit()

    def abort(self) -> None:
        self._txn.abort()


def pack_positions(places: list[int]) -> bytes:
    """Each event's place in its request, as uint32 little-endian."""
    packed = array.array("I", places)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_positions(blob: bytes) -> list[int]:
    packed = array.array("I")
    packed.frombytes(blob)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tolist()


def split_ids(ids: bytes) -> Iterator[bytes]:
    """The 16-byte event ids of a batch, in order."""
    return (ids[start : start + 16] for start in range(0, len(ids), 16))
