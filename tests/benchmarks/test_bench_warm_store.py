"""The serving benchmark reads every stored adapter file before a point, so no mode is the
first to read them cold."""

from pathlib import Path

from benchmarks.harness.sweep import warm_store


def test_warm_store_reads_every_file_below_the_store_and_nothing_else(
    tmp_path: Path, monkeypatch
) -> None:
    store = tmp_path / "adapters"
    wanted = {
        store / "tnt_a" / "tsk_1" / "v1-ab" / "adapter.safetensors",
        store / "tnt_a" / "tsk_1" / "v1-ab" / "config.json",
        store / "tnt_b" / "tsk_2" / "v3-cd" / "adapter.safetensors",
    }
    for path in wanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    (store / "tnt_b" / "empty-dir").mkdir()
    (tmp_path / "registry.db").write_bytes(b"not the store")
    read: list[Path] = []
    original = Path.read_bytes

    def recording(path: Path) -> bytes:
        read.append(path)
        return original(path)

    monkeypatch.setattr(Path, "read_bytes", recording)
    warm_store(tmp_path)
    assert sorted(read) == sorted(wanted)
