"""Where a bundle comes from: a local directory or an S3 prefix (the nightly drop). Files are
read as a stream of chunks, so memory does not grow with their size."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

CHUNK = 1 << 20  # bytes per read and per COPY write

# What stands, in the staged text, for what PostgreSQL's text cannot hold (COPY would refuse
# the whole file at the first one): Unicode noncharacters, kept for a program's internal use,
# so no district's data means them. validate.py refuses each cell that holds one.
NUL_MARK = "\ufffe"  # for a NUL byte
NOT_UTF8_MARK = "\uffff"  # for each byte that does not decode (a surrogate's three included)
_MARK_UNDECODABLE = "app-import-not-utf8"


def _mark_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return NOT_UTF8_MARK, error.end


codecs.register_error(_MARK_UNDECODABLE, _mark_undecodable)


class Source(Protocol):
    def names(self) -> list[str]:
        """The bundle's CSV file names (e.g. 'students.csv'), sorted."""
        ...

    def size(self, name: str) -> int: ...

    def chunks(self, name: str) -> Iterator[bytes]: ...


class LocalSource:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ValueError(f"{root} is not a directory")
        self.root = root

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.suffix.lower() == ".csv")

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size

    def chunks(self, name: str) -> Iterator[bytes]:
        with (self.root / name).open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk


class S3Source:
    """s3://bucket/prefix: the CSV objects directly under the prefix."""

    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3  # Imported lazily: local bundles do not need it.

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.s3 = boto3.client("s3")
        self._sizes: dict[str, int] = {}
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=self.prefix, Delimiter="/"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(self.prefix) :]
                if name.lower().endswith(".csv"):
                    self._sizes[name] = int(obj["Size"])

    def names(self) -> list[str]:
        return sorted(self._sizes)

    def size(self, name: str) -> int:
        return self._sizes[name]

    def chunks(self, name: str) -> Iterator[bytes]:
        body = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"]
        yield from body.iter_chunks(CHUNK)


def source_for(url: str) -> Source:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"{url}: no bucket (expected s3://bucket/prefix)")
        return S3Source(parsed.netloc, parsed.path)
    return LocalSource(Path(url))


class HeaderError(ValueError):
    pass


def split_header(chunks: Iterator[bytes]) -> tuple[list[str], Iterator[bytes]]:
    """The header's column names, and the whole stream (header included) to COPY."""
    buffered: list[bytes] = []
    for chunk in chunks:
        buffered.append(chunk)
        if b"\n" in chunk:
            break
    head = b"".join(buffered)
    if not head.strip():
        raise HeaderError("empty file: expected a header row")
    line = head.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").rstrip("\r")
    header = [h.strip() for h in next(csv.reader(io.StringIO(line)))]

    def stream() -> Iterator[bytes]:
        yield head
        yield from chunks

    return header, storable(stream())


def storable(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The file's bytes, each NUL byte and each byte that is not UTF-8 replaced by its mark,
    so COPY stages every row and each bad cell is refused alone, naming row and column.
    Decoded incrementally: a character split between two chunks is whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors=_MARK_UNDECODABLE)
    for chunk in chunks:
        yield decoder.decode(chunk).replace("\x00", NUL_MARK).encode()
    if tail := decoder.decode(b"", final=True):  # a file ending inside a character
        yield tail.encode()
