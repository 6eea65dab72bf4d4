"""The packages depend one way, worker -> service -> list_core, and no modules import each other.

Read from the source (the AST of every .py file), not by importing, so a cycle that happens to
resolve at import time today still fails here. The package rule counts every import, even one
inside a function; the cycle rule counts every import outside a function body.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("list_core", "service", "worker")
FORBIDDEN = {"list_core": ("service", "worker"), "service": ("worker",), "worker": ()}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = source_modules()


def imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import statement loads: `from a import b` is `a.b` when that is a
    module of ours, else `a`."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        is_package = MODULES[module].name == "__init__.py"
        anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    else:
        base = node.module or ""
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
        for alias in node.names
    ]


def imports(module: str, module_level_only: bool) -> set[str]:
    """Names `module` imports; with `module_level_only`, not those inside functions."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.update(imported_names(module, node))
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue
            inside_function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if not (module_level_only and inside_function):
                pending.append(child)
    return found


def _type_checking_only(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` blocks: imports for annotations, never executed."""
    return isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"


def top_package(name: str) -> str:
    return name.split(".")[0]


def test_the_walk_sees_every_package() -> None:
    assert {top_package(module) for module in MODULES} == set(PACKAGES)
    assert "service.jobs.execute" in MODULES and "list_core.training" in MODULES


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_depend_only_downwards(package: str) -> None:
    offenders = sorted(
        f"{module} imports {name}"
        for module in MODULES
        if top_package(module) == package
        for name in imports(module, module_level_only=False)
        if top_package(name) in FORBIDDEN[package]
    )
    assert offenders == []


def test_no_module_level_import_cycle() -> None:
    graph = {
        module: {name for name in imports(module, module_level_only=True) if name in MODULES}
        for module in MODULES
    }
    cycles = []
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def unit(module: str) -> str:
    """The part of the tree a module belongs to: its subpackage (`service.serving`), or the
    module itself when it sits directly in a top package (`service.settings`)."""
    parts = module.split(".")
    if len(parts) > 2 or MODULES[module].name == "__init__.py":
        return ".".join(parts[:2])
    return module


def test_no_cycle_between_subpackages() -> None:
    """Subpackages depend one way too (the route layer on serving, never back), counting
    imports inside functions."""
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        if module in PACKAGES:
            continue  # a top package's __init__ re-exports its modules for library users
        graph.setdefault(unit(module), set()).update(
            unit(name)
            for name in imports(module, module_level_only=False)
            if name in MODULES and name not in PACKAGES
        )
    for source, targets in graph.items():
        targets.discard(source)
    cycles = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
