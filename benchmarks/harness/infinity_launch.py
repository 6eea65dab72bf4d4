"""Start Infinity's CLI inside the peers benchmark's Infinity environment (not listserve's).

    <infinity venv>/bin/python benchmarks/harness/infinity_launch.py v2 --model-id ...

Why a launcher: Infinity 0.0.78's ONNX engine loads through optimum 1.x, whose exporter imports
private helpers from `torch.onnx.symbolic_opset14` at import time; torch 2.13 (the one torch
the benchmark shares, never replaced) moved them to `torch.onnx._internal.torchscript_exporter`.
They are aliased back before Infinity starts. They only define how to export SDPA to ONNX, which
serving an already exported model never calls, so the engine computes what it computes with the
torch it was built for. The torch engine never imports them.
"""

import torch.onnx.symbolic_opset14 as public

MOVED = (
    "_attention_scale",
    "_causal_attention_mask",
    "_onnx_symbolic",
    "_type_utils",
    "jit_utils",
    "symbolic_helper",
)


def alias_moved_onnx_helpers() -> None:
    missing = [name for name in MOVED if not hasattr(public, name)]
    if missing:
        import torch.onnx._internal.torchscript_exporter.symbolic_opset14 as moved

        for name in missing:
            setattr(public, name, getattr(moved, name))


if __name__ == "__main__":
    alias_moved_onnx_helpers()
    from infinity_emb.cli import cli

    cli()
