"""Per-task classification heads over the frozen encoder's hidden states, one module per kind,
and the registry that lists the kinds (`list_core.heads.registry`)."""
