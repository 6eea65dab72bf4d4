"""`listserve train` and `listserve predict`: the engine from files, with no server."""

import argparse
import json
import os
import sys

from tqdm import tqdm

from list_core.artifact import adapter_bytes, load_task_model, read_config, save_task_model
from list_core.backbone import Backbone
from list_core.backbone_choice import SERVER_SETTING, choose_backbone, load_chosen
from list_core.data import read_jsonl, read_jsonl_records
from list_core.export_cli import add_export_command
from list_core.inference import Row, predict_mixed
from list_core.predictions import prediction_record, summary_line, write_predictions
from list_core.progress import Progress
from list_core.prompts import TaskSpec
from list_core.task_model import METHODS
from list_core.training import train_task
from list_core.tuners.registry import DEFAULT_TUNER, TUNERS

BACKBONE_OPTION = "--backbone"


def add_engine_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `train` and `predict` on the top-level `listserve` parser."""
    train = subparsers.add_parser("train", help="train an adapter from JSONL files")
    train.add_argument(
        BACKBONE_OPTION,
        default=os.environ.get(SERVER_SETTING, "auto"),
        help="Hugging Face id, local folder, or auto (the default, or $LISTSERVE_BACKBONE): "
        "roberta-base when cached or downloadable, else the offline all-MiniLM-L6-v2",
    )
    train.add_argument("--examples", required=True, help='labelled JSONL: {"text", "label"}')
    train.add_argument("--unlabeled", help='unlabelled JSONL: {"text"}')
    train.add_argument("--labels", help="comma-separated labels (default: as seen in examples)")
    train.add_argument("--template", help="prompt template with {text} and one {mask}")
    train.add_argument("--label-words", help="label=word pairs, comma-separated")
    train.add_argument(
        "--method",
        default="list",
        choices=list(METHODS),
        help="contrastive: SetFit's recipe on the tuner (list from it: --set teacher=contrastive)",
    )
    train.add_argument(
        "--tuner",
        default=DEFAULT_TUNER,
        choices=list(TUNERS),
        help="what trains besides the head (docs/tuners.md); options via --set, e.g. "
        "--set lora_rank=4",
    )
    train.add_argument("--budget", default="auto", choices=["auto", "fast", "standard", "paper"])
    train.add_argument("--seed", type=int, default=13)
    train.add_argument("--device", default="auto", help="auto, cpu or cuda")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one hyperparameter (JSON value), e.g. --set sessions=3",
    )
    train.add_argument("--out", required=True, help="folder to write the adapter to")
    train.set_defaults(handler=run_train)

    predict = subparsers.add_parser(
        "predict",
        help="predict JSONL with a trained adapter",
        description="Each output line is the input line (gold `label` included) plus "
        "`prediction`, `score` and `scores`; with gold labels on every line, accuracy and "
        "macro-F1 are printed.",
    )
    predict.add_argument("--adapter", help="adapter folder from `train`")
    predict.add_argument("--input", required=True, help='JSONL: {"text", "label"?}')
    predict.add_argument("--output", help="write predictions as JSONL here")
    predict.add_argument(BACKBONE_OPTION, help="override the backbone recorded in the adapter")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--batch-size", type=int, default=64)
    predict.set_defaults(handler=run_predict)
    add_export_command(subparsers)


def _pairs(text: str | None, option: str) -> dict[str, str]:
    result = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"{option}: expected key=value, got {item!r}")
        result[key.strip()] = value.strip()
    return result


def _overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {"budget": args.budget, "seed": args.seed}
    for key, raw in _pairs(",".join(args.set), "--set").items():
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


def run_train(args: argparse.Namespace) -> int:
    examples = read_jsonl(args.examples)
    unlabeled = [e.text for e in read_jsonl(args.unlabeled)] if args.unlabeled else []
    labels = args.labels.split(",") if args.labels else sorted({str(e.label) for e in examples})
    spec = TaskSpec.create(labels, args.template, _pairs(args.label_words, "--label-words"))
    backbone = _backbone(args.backbone, args.device)
    print(
        "label words: "
        + ", ".join(f"{label}={word}" for label, word in spec.label_words.items())
        + " (a label missing from --label-words uses its own name)",
        file=sys.stderr,
    )
    bar = tqdm(total=1.0, bar_format="{percentage:3.0f}%|{bar:20}| {desc}", file=sys.stderr)
    result = train_task(
        backbone,
        spec,
        examples,
        unlabeled,
        args.method,
        _overrides(args),
        progress=lambda progress: _show(bar, progress),
        tuner=args.tuner,
    )
    bar.n = 1.0
    bar.close()
    out = save_task_model(
        result.model, backbone, args.out, result.metrics, result.hyperparameters.as_dict()
    )
    print(
        f"saved {args.method} {args.tuner} adapter to {out} "
        f"({result.metrics['trainable_parameters']} trainable parameters, "
        f"{adapter_bytes(out)} bytes, {result.metrics['train_seconds']:.1f}s)"
    )
    return 0


def _show(bar: tqdm, progress: Progress) -> None:
    """The bar's text: time spent, the phase-aware estimate of what is left, where it is."""
    elapsed, eta = progress.elapsed_seconds, progress.eta_seconds
    if elapsed is not None and eta is not None and elapsed + eta > 0:
        bar.n = round(min(elapsed / (elapsed + eta), 1.0), 4)
    else:
        bar.n = round(progress.fraction, 4)
    timing = [tqdm.format_interval(elapsed or 0) + " elapsed"]
    if eta is not None:
        timing.append(f"about {tqdm.format_interval(eta)} left")
    losses = " ".join(f"{k}={v:.3f}" for k, v in progress.losses.items())
    where = f"session {progress.session}/{progress.sessions} {progress.phase} {losses}".strip()
    bar.set_description_str(f"{', '.join(timing)} | {where}")


def _backbone(setting: str, device: str) -> Backbone:
    """The same choice and fallback as `listserve serve`, named after this option."""
    choice = choose_backbone(setting, BACKBONE_OPTION)
    return load_chosen(choice, device, BACKBONE_OPTION)[0]


def run_predict(args: argparse.Namespace) -> int:
    if not args.adapter:
        raise SystemExit("listserve predict: give --adapter FOLDER (or --server URL --task ID)")
    config = read_config(args.adapter)
    backbone = _backbone(args.backbone or config["backbone"]["source"], args.device)
    model = load_task_model(args.adapter, backbone)
    rows = read_jsonl_records(args.input)
    labels = list(model.spec.labels)
    records = []
    for start in range(0, len(rows), args.batch_size):
        chunk = rows[start : start + args.batch_size]
        probs = predict_mixed(backbone, [Row(model, e.text, e.text_b) for _, e in chunk])
        records += [
            prediction_record(record, labels, row)
            for (record, _), row in zip(chunk, probs, strict=True)
        ]
    finish_predictions(records, labels, args.output)
    return 0


def finish_predictions(records: list[dict], labels: list[str], output: str | None) -> None:
    """Write the records (or print the predicted labels) and the summary line."""
    if output:
        write_predictions(output, records)
    summary = summary_line(records, labels)
    if summary is not None:
        print(summary)
    elif not output:
        sys.stdout.writelines(f"{record['prediction']}\n" for record in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="listserve")
    add_engine_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
