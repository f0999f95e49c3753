"""Versioned model store: a local directory by default, S3 when the URL is s3://bucket/prefix.

Layout (same keys on both):
    versions/<version>/manifest.json      metrics, features, data snapshot, code version
    versions/<version>/<scope>.joblib     one model per scope ('district', 'school-12')
    versions/<version>/holdout.json       per scope: held-out labels and predicted risks
    versions/<version>/medians.json       per school (and district-wide): its students' median
                                          of each feature, shown beside a student's reasons
    versions/<version>/report.html        the run's model-quality report (`app report`)
    current.json                          the pointer: scope -> version, generation, history

Artifacts are written first and the pointer last, replaced atomically (os.replace locally, a
single PUT on S3), so a crash mid-run never changes what is served.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import joblib

POINTER = "current.json"
HOLDOUT_FILE = "holdout.json"
MEDIANS_FILE = "medians.json"
REPORT_FILE = "report.html"


class StaleGenerationError(RuntimeError):
    """A pointer would not be newer than the one in the store (generations only grow)."""


@dataclass
class Pointer:
    generation: int = 0
    scopes: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    updated_at: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Pointer:
        data = json.loads(raw)
        return cls(
            generation=int(data["generation"]),
            scopes=dict(data["scopes"]),
            history=list(data.get("history", [])),
            updated_at=data.get("updated_at"),
        )

    def versions_in_use(self) -> set[str]:
        used = set(self.scopes.values())
        for past in self.history:
            used.update(past["scopes"].values())
        return used


class Backend(Protocol):
    def read(self, key: str) -> bytes | None: ...
    def write(self, key: str, data: bytes) -> None: ...
    def list_versions(self) -> list[str]: ...
    def delete_version(self, version: str) -> None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
    def destroy(self, prefix: str) -> tuple[int, int]: ...


class LocalBackend:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        return path.read_bytes() if path.exists() else None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file
        except BaseException:
            with contextlib.suppress(OSError):  # a full or read-only disk: leave no temp file
                os.unlink(tmp)
            raise

    def list_versions(self) -> list[str]:
        base = self.root / "versions"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def delete_version(self, version: str) -> None:
        shutil.rmtree(self.root / "versions" / version, ignore_errors=True)

    def list_keys(self, prefix: str) -> list[str]:
        """Every stored key under `prefix` (a folder), sorted."""
        base = self.root / prefix
        if not base.is_dir():
            return []
        found = (p for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))
        return sorted(str(p.relative_to(self.root)) for p in found)

    def destroy(self, prefix: str) -> tuple[int, int]:
        """Deletes every file under `prefix` (a folder or one file); (files, files): a local
        store keeps no older versions."""
        path = self.root / prefix
        if path.is_file():
            path.unlink()
            return 1, 1
        n = len([p for p in path.rglob("*") if p.is_file()]) if path.is_dir() else 0
        shutil.rmtree(path, ignore_errors=True)
        return n, n


class S3Backend:
    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3  # Imported lazily: local stores do not need it.

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.s3 = boto3.client("s3")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.s3.exceptions.NoSuchKey:
            return None
        body: bytes = obj["Body"].read()
        return body

    def write(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def list_versions(self) -> list[str]:
        found: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("versions/")):
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(self._key("versions/")) :]
                found.add(rest.split("/", 1)[0])
        return sorted(found)

    def list_keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        start = len(self._key(""))
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            found += [o["Key"][start:] for o in page.get("Contents", [])]
        return sorted(found)

    def destroy(self, prefix: str) -> tuple[int, int]:
        """Deletes every version and delete marker of every object under `prefix`: in a
        versioned bucket a plain DeleteObject only hides the data behind a marker. Returns
        (objects, versions and markers) removed. A version under Object Lock is refused by
        S3 (AccessDenied) until its retention ends: the error is raised."""
        keys: set[str] = set()
        removed = 0
        paginator = self.s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            batch = [{"Key": e["Key"], "VersionId": e["VersionId"]} for e in entries]
            for i in range(0, len(batch), 1000):  # DeleteObjects takes 1,000 at most
                answer = self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch[i : i + 1000], "Quiet": True}
                )
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise RuntimeError(
                        f"s3://{self.bucket}/{first['Key']} version {first.get('VersionId')}"
                        f" not deleted: {first.get('Code')} {first.get('Message')}"
                    )
            keys |= {e["Key"] for e in page.get("Versions", [])}
            removed += len(batch)
        return len(keys), removed

    def delete_version(self, version: str) -> None:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(
            Bucket=self.bucket, Prefix=self._key(f"versions/{version}/")
        ):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def backend_for(url: str) -> Backend:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return S3Backend(parsed.netloc, parsed.path)
    return LocalBackend(Path(parsed.path if parsed.scheme == "file" else url))


class ModelStore:
    def __init__(self, url: str) -> None:
        self.backend = backend_for(url)

    def pointer(self) -> Pointer:
        raw = self.backend.read(POINTER)
        return Pointer.from_json(raw) if raw else Pointer()

    def write_model(self, version: str, scope: str, model: Any) -> None:
        buf = io.BytesIO()
        joblib.dump(model, buf, compress=3)
        self.backend.write(f"versions/{version}/{scope}.joblib", buf.getvalue())

    def load_model(self, version: str, scope: str) -> Any:
        raw = self.backend.read(f"versions/{version}/{scope}.joblib")
        if raw is None:
            raise FileNotFoundError(f"model {scope} of version {version} is missing")
        return joblib.load(io.BytesIO(raw))

    def write_manifest(self, version: str, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        self.backend.write(f"versions/{version}/manifest.json", data)

    def write_file(self, version: str, name: str, data: bytes) -> None:
        """Another file of a version (held-out predictions, the report)."""
        self.backend.write(f"versions/{version}/{name}", data)

    def read_file(self, version: str, name: str) -> bytes | None:
        return self.backend.read(f"versions/{version}/{name}")

    def manifest(self, version: str) -> dict[str, Any] | None:
        raw = self.backend.read(f"versions/{version}/manifest.json")
        return json.loads(raw) if raw else None

    def versions(self) -> list[str]:
        """Versions that have a manifest (a version without one never finished writing)."""
        return [v for v in self.backend.list_versions() if self.manifest(v) is not None]

    def write_pointer(self, pointer: Pointer) -> None:
        """The single step that changes what is served. Generations only grow: caches and
        risk_scores are keyed by generation, so reusing one would mix two pointer states.
        (Writers hold the training lock, so the check and the write do not race.)"""
        self.check_newer(pointer)
        self.backend.write(POINTER, pointer.to_json())

    def check_newer(self, pointer: Pointer) -> None:
        current = self.pointer()
        if pointer.generation <= current.generation:
            raise StaleGenerationError(
                f"refusing to write pointer generation {pointer.generation}: the store is"
                f" already at generation {current.generation}"
            )

    def next_pointer(
        self, current: Pointer, scopes: dict[str, str], now: str, keep: int
    ) -> Pointer:
        """The pointer after `current`; it remembers up to keep-1 earlier states for rollback,
        so that with the current one at most `keep` versions are in use."""
        history = [{"generation": current.generation, "scopes": current.scopes}, *current.history]
        history = [h for h in history if h["scopes"]][: keep - 1]
        return Pointer(current.generation + 1, scopes, history, now)

    def export_archive(self) -> bytes:
        """The served models as a ``model.tar.gz`` in this store's own layout: the pointer
        (without rollback history) and the manifest and model of every scope it serves.
        SageMaker extracts it into /opt/ml/model, which the image then serves as its store."""
        pointer = self.pointer()
        if not pointer.scopes:
            raise ValueError("nothing to export: no model has been promoted yet")
        served = Pointer(pointer.generation, dict(pointer.scopes), [], pointer.updated_at)
        files = {POINTER: served.to_json()}
        for scope, version in sorted(pointer.scopes.items()):
            for key in (f"versions/{version}/manifest.json", f"versions/{version}/{scope}.joblib"):
                data = self.backend.read(key)
                if data is None:
                    raise FileNotFoundError(f"{key} is missing from the store")
                files[key] = data
        # The medians the reasons are shown beside (the newest run's; a run before them has
        # none, and its reasons show no median).
        medians = f"versions/{max(pointer.scopes.values())}/{MEDIANS_FILE}"
        if (data := self.backend.read(medians)) is not None:
            files[medians] = data
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for key, data in files.items():
                info = tarfile.TarInfo(key)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` complete versions, and every incomplete one (no
        manifest: a run that died while writing it), never one the pointer or history uses.
        Runs under the training lock, so no version is being written meanwhile."""
        in_use = self.pointer().versions_in_use()
        all_versions = self.backend.list_versions()
        complete = [v for v in all_versions if self.manifest(v) is not None]
        newest = set(sorted(complete)[-keep:])
        doomed = [v for v in all_versions if v not in newest and v not in in_use]
        for v in doomed:
            self.backend.delete_version(v)
        return doomed
