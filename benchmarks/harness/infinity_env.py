"""Infinity's own Python environment for the peers benchmark, and the model folder it serves.

Why its own: `infinity-emb` 0.0.78 (the newest) needs numpy < 2, sentence-transformers < 4 and,
for its ONNX engine, optimum 1.x, which in turn needs transformers < 4.49; listserve needs
transformers >= 5. They cannot share one environment, so Infinity cannot be in the `peers`
extra either (pip resolves an extra with the project). The benchmark builds a virtual
environment under its work folder instead, with the same torch as listserve's (linked, never
downloaded: PyPI's Linux torch is the CUDA build, gigabytes) and the pins below.

The ONNX engine needs an ONNX file beside the model, which the offline MiniLM copy does not
ship (the hub's copy does): `export_onnx` writes one with torch's own exporter from the same
weights, and Infinity optimises it itself at start-up, as it does for a hub model.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import torch

INFINITY_REQUIREMENTS = (
    "infinity-emb[server,torch]==0.0.78",
    "optimum==1.27.0",  # 2.x dropped the OptimizationConfig argument Infinity 0.0.78 passes
    "transformers>=4.47,<4.49",  # optimum 1.27's BetterTransformer refuses newer
    "onnxruntime>=1.17,<2",
    "onnx>=1.15,<2",
)
TORCH_ENTRIES = ("torch", "torch-*.dist-info", "functorch", "torchgen")
LAUNCHER = Path(__file__).with_name("infinity_launch.py")
EXPORT_SCRIPT = """
import sys, torch
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], attn_implementation="eager").eval()
ids = torch.ones(2, 8, dtype=torch.long)
axes = {0: "batch_size", 1: "sequence_length"}
names = ["input_ids", "attention_mask", "token_type_ids"]
with torch.no_grad():
    torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), sys.argv[2],
        input_names=names, output_names=["last_hidden_state"],
        dynamic_axes={name: axes for name in [*names, "last_hidden_state"]},
        opset_version=17, dynamo=False)
"""


def torch_constraint(version: str = torch.__version__) -> str:
    """The pip constraint that keeps this torch: `torch==2.13.0` for `2.13.0+cpu`."""
    return f"torch=={version.split('+', 1)[0]}"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return venv / "lib" / version / "site-packages"


def link_torch(venv: Path) -> None:
    """Make this process's torch importable in `venv`, by symlinks beside a `.pth` file, so
    pip there sees it installed and never fetches another."""
    source = Path(torch.__file__).resolve().parents[1]
    links = venv / "torch-link"
    links.mkdir(exist_ok=True)
    for pattern in TORCH_ENTRIES:
        for entry in source.glob(pattern):
            link = links / entry.name
            if not link.exists():
                link.symlink_to(entry)
    (_site_packages(venv) / "listserve-torch.pth").write_text(f"{links}\n", encoding="utf-8")


def ensure_infinity_env(venv: Path) -> Path:
    """Build (once) the environment and return its python; refuses to go on if its torch is
    not this one."""
    python = venv_python(venv)
    marker = venv / ".infinity-ready"
    if marker.is_file():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    link_torch(venv)
    constraints = venv / "constraints.txt"
    constraints.write_text(torch_constraint() + "\n", encoding="utf-8")
    command = [str(python), "-m", "pip", "install", "-q", "-c", str(constraints)]
    subprocess.run([*command, *INFINITY_REQUIREMENTS], check=True)
    found = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(Path(torch.__file__).resolve().parents[1]):
        raise RuntimeError(f"{venv} imports another torch ({found}); remove it and retry")
    marker.write_text(" ".join(INFINITY_REQUIREMENTS) + "\n", encoding="utf-8")
    return python


def export_onnx(python: Path, model_dir: Path, target: Path) -> Path:
    """A copy of `model_dir` with `model.onnx` at its top (once): Infinity finds an ONNX file
    of a local folder only there (it matches file names, not paths)."""
    if (target / "model.onnx").is_file():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(model_dir, staging)
    subprocess.run(
        [str(python), "-c", EXPORT_SCRIPT, str(staging), str(staging / "model.onnx")],
        check=True,
        capture_output=True,
    )
    staging.rename(target)
    return target


def infinity_command(python: Path, engine: str, port: int, device: str = "cpu") -> list[str]:
    """Infinity's v2 server on loopback for the model folder it runs in (`--model-id .`),
    embeddings with the model's own mean pooling (its ONNX engine would guess CLS for a local
    folder), no result cache."""
    return [
        str(python), str(LAUNCHER), "v2",
        "--model-id", ".",
        "--served-model-name", "minilm",
        "--engine", engine,
        "--device", device,
        "--pooling-method", "mean",
        "--no-vector-disk-cache",
        "--host", "127.0.0.1",
        "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip


def infinity_version(python: Path) -> str | None:
    """The installed `infinity-emb` version of the environment (None when absent)."""
    completed = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('infinity-emb'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() or None
