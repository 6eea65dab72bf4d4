"""`--speedups`: which training speed-ups a benchmark job uses (list_core/training_forwards.py).

`all` (the default, what train_task uses), `none` (the path before them), or a comma list of
levers, each switched on alone or together: `bf16` (frozen Linear layers in bf16 where the CPU
has bf16 hardware), `teacher` (scripted teacher pseudo-labels, once per pool row), `fused`
(re-weighting by forward-mode AD in the student's forward; needs `bf16`), `buckets` (length
runs).
"""

import argparse

from list_core.training_forwards import NO_SPEEDUPS, TrainingSpeedups

ALL = "all"
LEVERS = ("bf16", "teacher", "fused", "buckets")


def parse_speedups(text: str) -> TrainingSpeedups:
    """The `TrainingSpeedups` that `text` names (see the module docstring)."""
    text = text.strip()
    if text == ALL:
        return TrainingSpeedups()
    if text == "none":
        return NO_SPEEDUPS
    levers = {item.strip() for item in text.split(",") if item.strip()}
    unknown = sorted(levers - set(LEVERS))
    if unknown or not levers:
        raise argparse.ArgumentTypeError(
            f"{unknown or text!r}: choose all, none, or from {list(LEVERS)}"
        )
    if "fused" in levers and "bf16" not in levers:
        raise argparse.ArgumentTypeError("fused applies under bf16 only: add bf16")
    return TrainingSpeedups(
        precision="auto" if "bf16" in levers else "fp32",
        scripted_teacher="teacher" in levers,
        fused_reweighting="fused" in levers,
        length_buckets="buckets" in levers,
    )


def speedups_name(speedups: TrainingSpeedups) -> str:
    """`all`, `none`, or the comma list `parse_speedups` reads back."""
    if speedups == TrainingSpeedups():
        return ALL
    if speedups == NO_SPEEDUPS:
        return "none"
    on = {
        "bf16": speedups.precision != "fp32",
        "teacher": speedups.scripted_teacher,
        "fused": speedups.fused_reweighting,
        "buckets": speedups.length_buckets,
    }
    return ",".join(lever for lever in LEVERS if on[lever])
