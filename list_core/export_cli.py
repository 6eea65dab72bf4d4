"""`listserve export`: a trained task's tuner in another library's format (PEFT today)."""

import argparse

from list_core.artifact import load_task_model, read_config
from list_core.backbone import load_backbone
from list_core.tuners.peft_export import ExportError, export_peft

FORMATS = ("peft",)


def add_export_command(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export",
        help="write a trained adapter in PEFT's format",
        description="Writes adapter_config.json + adapter_model.safetensors, loadable with "
        "peft.PeftModel.from_pretrained(AutoModel.from_pretrained(<backbone>), OUT), for the "
        "lora, prefix, prompt_tuning and p_tuning tuners. Needs peft "
        "(pip install 'listserve[peers]').",
    )
    export.add_argument("--adapter", required=True, help="adapter folder from `train`")
    export.add_argument("--format", default="peft", choices=list(FORMATS))
    export.add_argument("--out", required=True, help="folder to write the export to")
    export.add_argument("--backbone", help="override the backbone recorded in the adapter")
    export.add_argument("--device", default="cpu")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    config = read_config(args.adapter)
    backbone = load_backbone(args.backbone or config["backbone"]["source"], args.device)
    model = load_task_model(args.adapter, backbone)
    try:
        out = export_peft(model, backbone, args.out)
    except ExportError as error:
        raise SystemExit(f"listserve export: {error}") from error
    print(f"exported {model.tuner} adapter as PEFT to {out}")
    return 0
