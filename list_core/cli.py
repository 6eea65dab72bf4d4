"""`listserve train` and `listserve predict`: the engine from files, with no server."""

import argparse
import json
import sys

from tqdm import tqdm

from list_core.artifact import adapter_bytes, load_task_model, read_config, save_task_model
from list_core.backbone import load_backbone
from list_core.data import read_jsonl
from list_core.inference import Row, predict_mixed
from list_core.metrics import accuracy, macro_f1
from list_core.progress import Progress
from list_core.prompts import TaskSpec
from list_core.training import train_task


def add_engine_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register `train` and `predict` on the top-level `listserve` parser."""
    train = subparsers.add_parser("train", help="train an adapter from JSONL files")
    train.add_argument("--backbone", required=True, help="Hugging Face id or local folder")
    train.add_argument("--examples", required=True, help='labelled JSONL: {"text", "label"}')
    train.add_argument("--unlabeled", help='unlabelled JSONL: {"text"}')
    train.add_argument("--labels", help="comma-separated labels (default: as seen in examples)")
    train.add_argument("--template", help="prompt template with {text} and one {mask}")
    train.add_argument("--label-words", help="label=word pairs, comma-separated")
    train.add_argument("--method", default="list", choices=["list", "prompt", "classic"])
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

    predict = subparsers.add_parser("predict", help="predict JSONL with a trained adapter")
    predict.add_argument("--adapter", required=True, help="adapter folder from `train`")
    predict.add_argument("--input", required=True, help='JSONL: {"text", "label"?}')
    predict.add_argument("--output", help="write predictions as JSONL here")
    predict.add_argument("--backbone", help="override the backbone recorded in the adapter")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--batch-size", type=int, default=64)
    predict.set_defaults(handler=run_predict)


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
    backbone = load_backbone(args.backbone, args.device)
    bar = tqdm(total=1.0, unit="job", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def report(progress: Progress) -> None:
        bar.n = round(progress.fraction, 4)
        losses = " ".join(f"{k}={v:.3f}" for k, v in progress.losses.items())
        bar.set_postfix_str(
            f"session {progress.session}/{progress.sessions} {progress.phase} {losses}"
        )

    result = train_task(
        backbone, spec, examples, unlabeled, args.method, _overrides(args), progress=report
    )
    bar.n = 1.0
    bar.close()
    out = save_task_model(
        result.model, backbone, args.out, result.metrics, result.hyperparameters.as_dict()
    )
    print(
        f"saved {args.method} adapter to {out} "
        f"({result.metrics['trainable_parameters']} trainable parameters, "
        f"{adapter_bytes(out)} bytes, {result.metrics['train_seconds']:.1f}s)"
    )
    return 0


def run_predict(args: argparse.Namespace) -> int:
    config = read_config(args.adapter)
    backbone = load_backbone(args.backbone or config["backbone"]["source"], args.device)
    model = load_task_model(args.adapter, backbone)
    examples = read_jsonl(args.input)
    records = []
    for start in range(0, len(examples), args.batch_size):
        chunk = examples[start : start + args.batch_size]
        probs = predict_mixed(backbone, [Row(model, e.text, e.text_b) for e in chunk])
        for example, row in zip(chunk, probs, strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            records.append(
                {
                    "text": example.text,
                    "label": model.spec.labels[best],
                    "score": row[best],
                    "scores": dict(zip(model.spec.labels, row, strict=True)),
                }
            )
    predicted = [record["label"] for record in records]
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in records)
    gold = [e.label for e in examples]
    if examples and all(label is not None for label in gold):
        acc = accuracy(gold, predicted)
        f1 = macro_f1(gold, predicted, model.spec.labels)
        print(f"examples={len(examples)} accuracy={acc:.4f} macro_f1={f1:.4f}")
    elif not args.output:
        sys.stdout.writelines(f"{label}\n" for label in predicted)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="listserve")
    add_engine_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
