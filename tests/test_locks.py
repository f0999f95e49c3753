"""The locks: every package the venv and the image install is pinned with its hashes, and
each requirement a requirement file pins is in its lock at that version (`make lock`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Which requirement files each lock is compiled from (the Makefile's `lock` target).
LOCKS = {
    "requirements.lock": [
        "requirements-dev.txt",
        "app/requirements.txt",
        "app/requirements-test.txt",
    ],
    "app/requirements.lock": ["app/requirements.txt"],
    "requirements-bootstrap.lock": ["requirements-bootstrap.txt"],
}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path, follow: bool = True) -> dict[str, str]:
    """name -> version of the `==` pins of a requirement file (and the files it includes)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if follow and line.startswith("-r "):
            found |= pins(path.parent / line[3:].strip())
        elif match := PIN.match(line):
            found[normalized(match[1])] = match[2]
    return found


def locked(path: Path) -> tuple[dict[str, str], set[str]]:
    """The lock's pins, and those without a hash."""
    text = path.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    versions, unhashed = {}, set()
    for entry in entries:
        if match := PIN.match(entry.strip()):
            name = normalized(match[1])
            versions[name] = match[2]
            if "--hash=sha256:" not in entry:
                unhashed.add(name)
    return versions, unhashed


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_requirement_is_locked_at_its_pinned_version(lock: str) -> None:
    versions, unhashed = locked(ROOT / lock)
    assert versions and not unhashed, f"{lock}: pins without hashes: {sorted(unhashed)}"
    for source in LOCKS[lock]:
        for name, version in pins(ROOT / source).items():
            assert name in versions, f"{source} pins {name}, which {lock} lacks: run `make lock`"
            assert versions[name] == version, (
                f"{source} pins {name}=={version}, {lock} has {versions[name]}: run `make lock`"
            )


def test_the_image_and_the_venv_agree_on_every_shared_package() -> None:
    venv, _ = locked(ROOT / "requirements.lock")
    image, _ = locked(ROOT / "app/requirements.lock")
    assert {n: v for n, v in image.items() if venv.get(n) != v} == {}


def test_installs_come_from_the_locks_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for lock in ("requirements-bootstrap.lock", "requirements.lock"):
        assert f"--require-hashes -r {lock}" in makefile
    dockerfile = (ROOT / "app" / "Dockerfile").read_text()
    assert "--require-hashes -r /tmp/requirements.lock" in dockerfile
    assert "COPY app/requirements.lock" in dockerfile


def test_a_requirement_missing_from_the_lock_is_caught(tmp_path: Path) -> None:
    (tmp_path / "req.txt").write_text("numpy==2.0.0\nnot-locked==1.0\n")
    (tmp_path / "req.lock").write_text("numpy==2.0.0 \\\n    --hash=sha256:abc\n")
    versions, _ = locked(tmp_path / "req.lock")
    missing = set(pins(tmp_path / "req.txt")) - set(versions)
    assert missing == {"not-locked"}
