"""The adapter store: atomic layout by tenant/task/version, sha256 checked on every load."""

import ast
from pathlib import Path

import pytest
import torch

import service
from list_core.adapters import AdapterConfig
from list_core.artifact import CONFIG_FILE, WEIGHTS_FILE
from list_core.backbone import load_backbone
from list_core.inference import Row, predict_mixed
from list_core.prompts import TaskSpec
from list_core.task_model import TaskModel
from service.store import AdapterIntegrityError, AdapterStore, _read_whole, directory_sha256
from tests.c_calls import c_calls


@pytest.fixture
def backbone(tiny_roberta_path: Path):
    return load_backbone(str(tiny_roberta_path), "cpu")


@pytest.fixture
def model(backbone) -> TaskModel:
    spec = TaskSpec.create(["positive", "negative"], None, {"positive": "great", "negative": "bad"})
    generator = torch.Generator().manual_seed(0)
    return TaskModel(backbone, spec, "list", AdapterConfig(bottleneck=4), 32, generator)


def test_write_then_load_round_trips(tmp_path: Path, backbone, model: TaskModel) -> None:
    store = AdapterStore(tmp_path)
    stored = store.write("tnt_a", "tsk_b", 3, model, backbone, {"steps": 1})
    directory = tmp_path / stored.path
    assert stored.path.startswith("tnt_a/tsk_b/v3-")
    assert sorted(p.name for p in directory.iterdir()) == sorted([WEIGHTS_FILE, CONFIG_FILE])
    assert [p.name for p in directory.parent.iterdir() if p.name.startswith(".")] == []
    assert stored.sha256 == directory_sha256(directory)
    assert stored.size_bytes == sum(p.stat().st_size for p in directory.iterdir())
    loaded = store.load(stored.path, stored.sha256, backbone)
    rows = ["a great film", "bad plot"]
    expected = predict_mixed(backbone, [Row(model, text) for text in rows])
    assert predict_mixed(backbone, [Row(loaded, text) for text in rows]) == expected


def test_two_writes_of_one_version_never_share_files(tmp_path, backbone, model) -> None:
    store = AdapterStore(tmp_path)
    first = store.write("tnt_a", "tsk_b", 1, model, backbone)
    second = store.write("tnt_a", "tsk_b", 1, model, backbone)
    assert first.path != second.path
    store.remove(second.path)
    assert store.load(first.path, first.sha256, backbone) is not None


@pytest.mark.parametrize("victim", [WEIGHTS_FILE, CONFIG_FILE])
def test_a_changed_file_is_refused(tmp_path, backbone, model, victim: str) -> None:
    store = AdapterStore(tmp_path)
    stored = store.write("tnt_a", "tsk_b", 1, model, backbone)
    path = tmp_path / stored.path / victim
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AdapterIntegrityError, match="does not match"):
        store.load(stored.path, stored.sha256, backbone)


def test_missing_files_and_escaping_paths_are_refused(tmp_path, backbone, model) -> None:
    store = AdapterStore(tmp_path / "store")
    stored = store.write("tnt_a", "tsk_b", 1, model, backbone)
    (tmp_path / "store" / stored.path / WEIGHTS_FILE).unlink()
    with pytest.raises(AdapterIntegrityError, match="missing"):
        store.load(stored.path, stored.sha256, backbone)
    escapes = ["../../etc", "/etc", "tnt_a/tsk_b/../../../etc", f"{stored.path}/../../../.."]
    escapes += ["tnt_a/tsk_b", f"{stored.path}/", f"./{stored.path}", "tnt_a/tsk_b/v1-XYZ"]
    escapes += [f"{stored.path}\n"]  # `$` alone would let a trailing newline through
    for escape in escapes:
        with pytest.raises(AdapterIntegrityError, match="not one this store wrote"):
            store.load(escape, stored.sha256, backbone)
    for unsafe in ("../x", "tnt_a\n"):
        with pytest.raises(ValueError, match="safe path"):
            store.write(unsafe, "tsk_b", 1, model, backbone)


def test_a_directory_in_place_of_a_file_is_refused(tmp_path, backbone, model) -> None:
    store = AdapterStore(tmp_path)
    stored = store.write("tnt_a", "tsk_b", 1, model, backbone)
    weights = tmp_path / stored.path / WEIGHTS_FILE
    weights.unlink()
    weights.mkdir()
    with pytest.raises(AdapterIntegrityError, match="missing"):
        store.load(stored.path, stored.sha256, backbone)


def test_a_load_reads_each_file_in_four_system_calls(tmp_path, backbone, model) -> None:
    """Each system call releases the GIL, and a cold load in a busy server may wait a switch
    interval to win it back after each; `Path.read_bytes` made about twice as many."""
    store = AdapterStore(tmp_path)
    stored = store.write("tnt_a", "tsk_b", 1, model, backbone)
    store.load(stored.path, stored.sha256, backbone)  # one-off lazy imports
    calls = [
        f"{module}.{name}"
        for module, name in c_calls(lambda: store.load(stored.path, stored.sha256, backbone))
        if module in ("posix", "io", "_io") and name != "fspath"  # fspath: no system call
    ]
    assert sorted(calls) == sorted(["posix.open", "posix.fstat", "posix.read", "posix.close"] * 2)


def test_a_file_longer_than_its_reported_size_is_read_whole() -> None:
    """`/proc` files report size 0: the read past the size finds more, and the rest is read."""
    path = Path("/proc/self/cmdline")
    if not path.exists():
        pytest.skip("needs Linux /proc")
    assert path.stat().st_size == 0
    assert _read_whole(path) == path.read_bytes() != b""


def test_remove_task_deletes_every_version(tmp_path, backbone, model) -> None:
    store = AdapterStore(tmp_path)
    store.write("tnt_a", "tsk_b", 1, model, backbone)
    store.write("tnt_a", "tsk_b", 2, model, backbone)
    kept = store.write("tnt_a", "tsk_c", 1, model, backbone)
    store.remove_task("tnt_a", "tsk_b")
    assert not (tmp_path / "tnt_a" / "tsk_b").exists()
    assert (tmp_path / kept.path).is_dir()


def test_store_registry_and_jobs_do_not_import_fastapi() -> None:
    """The worker imports these; follow every `service.*` import they make, transitively."""
    root = Path(service.__file__).parent
    seen: set[str] = set()
    pending = [
        "service.store",
        "service.registry.tasks",
        "service.registry.adapters",
        "service.jobs.execute",
        "service.jobs.inprocess",
        "service.registry.migrate",
    ]
    outside: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        relative = Path(*name.split(".")[1:])
        path = root / relative.with_suffix(".py")
        if not path.exists():
            path = root / relative / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for imported in names:
                if imported.startswith("service."):
                    pending.append(imported)
                else:
                    outside.add(imported.split(".")[0])
    assert "service.api.app" not in seen and not any(n.startswith("service.api") for n in seen)
    assert not outside & {"fastapi", "starlette", "uvicorn"}
