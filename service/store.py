"""The adapter store: trained adapters on disk under `root/<tenant>/<task>/v<version>-<token>/`.

A version directory is built next to its final place, every file fsynced, then renamed into place
in one step, so readers never see half an adapter. The random token keeps two writers of one
version (a job re-delivered while its first worker still ran) from touching each other's files;
the registry decides which one counts. Its sha256 (over the weights and the config,
which holds the labels) is recorded in the registry and checked before every load; loading goes
through `list_core.artifact`, which reads safetensors only, so nothing is ever unpickled.
"""

import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from list_core.artifact import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    AdapterMismatchError,
    save_task_model,
    task_model_from_bytes,
)
from list_core.backbone import Backbone
from list_core.task_model import TaskModel

_ID = r"[A-Za-z0-9_-]{1,64}"
_SAFE_ID = re.compile(_ID)
# The shape `write` gives a version's path: "<tenant>/<task>/v<version>-<token>".
_REGISTERED_PATH = re.compile(rf"{_ID}/{_ID}/v[0-9]{{1,18}}-[0-9a-f]{{1,64}}")
_HASHED_FILES = (WEIGHTS_FILE, CONFIG_FILE)


class AdapterIntegrityError(RuntimeError):
    """The files on disk are missing or differ from what the registry recorded."""


@dataclass(frozen=True)
class StoredAdapter:
    """Where a version landed (`path` relative to the store root) and its digest."""

    path: str
    sha256: str
    size_bytes: int


class AdapterStore:
    """Reads and writes adapter versions below one root directory (shared by API and workers)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def task_directory(self, tenant_id: str, task_id: str) -> Path:
        for name, value in (("tenant_id", tenant_id), ("task_id", task_id)):
            if not _SAFE_ID.fullmatch(value):
                raise ValueError(f"{name} {value!r} is not a safe path component")
        return self.root / tenant_id / task_id

    def absolute(self, relative: str) -> Path:
        """The directory for a registered path; refuses any path `write` would not have made.

        Checked by its shape, not by resolving it: resolving costs an lstat per component, and
        each releases the GIL, which a cold load in a busy server then waits to win back. Such
        a path has no `..` and is not absolute, so it stays below the root; a link planted in
        the store could still lead elsewhere, but `load` serves only bytes whose sha256 the
        registry recorded.
        """
        if not _REGISTERED_PATH.fullmatch(relative):
            raise AdapterIntegrityError(
                f"adapter path {relative!r} is not one this store wrote (it could lead outside it)"
            )
        return self.root / relative

    def write(
        self,
        tenant_id: str,
        task_id: str,
        version: int,
        model: TaskModel,
        backbone: Backbone,
        metrics: dict | None = None,
        hyperparameters: dict | None = None,
    ) -> StoredAdapter:
        """Write a version atomically into a fresh directory; returns where and its digest."""
        parent = self.task_directory(tenant_id, task_id)
        parent.mkdir(parents=True, exist_ok=True)
        name = f"v{int(version)}-{uuid.uuid4().hex[:12]}"
        staging, final = parent / f".staging-{name}", parent / name
        try:
            save_task_model(model, backbone, staging, metrics, hyperparameters)
            digest = directory_sha256(staging)
            size = sum((staging / file).stat().st_size for file in _HASHED_FILES)
            _fsync_directory(staging)
            os.rename(staging, final)
            _fsync_directory(parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return StoredAdapter(final.relative_to(self.root).as_posix(), digest, size)

    def load(self, relative: str, sha256: str, backbone: Backbone) -> TaskModel:
        """Read the files once, verify their digest, then rebuild the model from those bytes.

        Hashing and parsing the same in-memory bytes means a file replaced after the check can
        never be loaded unverified, and the weights are read from disk only once.
        """
        directory = self.absolute(relative)
        files = _read_hashed_files(directory)
        actual = _files_sha256(files)
        if actual != sha256:
            raise AdapterIntegrityError(
                f"adapter {relative}: sha256 {actual[:12]} does not match the registered "
                f"{sha256[:12]}"
            )
        try:
            config = json.loads(files[CONFIG_FILE])
        except ValueError as error:
            raise AdapterMismatchError(f"adapter {relative}: {CONFIG_FILE} is not JSON") from error
        return task_model_from_bytes(config, files[WEIGHTS_FILE], backbone, relative)

    def remove(self, relative: str) -> None:
        shutil.rmtree(self.absolute(relative), ignore_errors=True)

    def remove_task(self, tenant_id: str, task_id: str) -> None:
        """Delete every version of a task (its texts were the tenant's; so are its weights)."""
        shutil.rmtree(self.task_directory(tenant_id, task_id), ignore_errors=True)

    def remove_tenant(self, tenant_id: str) -> None:
        """Delete every file of a deleted tenant."""
        if not _SAFE_ID.fullmatch(tenant_id):
            raise ValueError(f"tenant_id {tenant_id!r} is not a safe path component")
        shutil.rmtree(self.root / tenant_id, ignore_errors=True)


def directory_sha256(directory: str | Path) -> str:
    """sha256 over (name, length, bytes) of the weights and the config, in a fixed order."""
    return _files_sha256(_read_hashed_files(Path(directory)))


def _read_hashed_files(directory: Path) -> dict[str, bytes]:
    """The hashed files' contents (an adapter is ~1 MB, so reading it whole is fine)."""
    files = {}
    for name in _HASHED_FILES:
        try:
            files[name] = _read_whole(directory / name)
        except (FileNotFoundError, IsADirectoryError) as error:
            raise AdapterIntegrityError(f"{directory}: {name} is missing") from error
    return files


def _read_whole(path: Path) -> bytes:
    """A file's bytes in four system calls (open, fstat, read, close).

    `Path.read_bytes` makes about twice as many (a tty check, more fstats, a seek, a read
    that finds the end), and each releases the GIL, which a cold load in a busy server may then
    wait a switch interval to win back. A read that does not return exactly the file's size
    (it changed meanwhile) is finished the ordinary way; the digest check judges the result.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)
        if len(data) == size:
            return data
        with open(fd, "rb", closefd=False) as rest:
            return data + rest.read()
    finally:
        os.close(fd)


def _files_sha256(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in _HASHED_FILES:
        digest.update(f"{name}:{len(files[name])}\n".encode())
        digest.update(files[name])
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """Make the entries (new files, the rename) durable, not just the file contents."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
