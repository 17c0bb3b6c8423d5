"""The import graph of the two packages has no cycle, and it runs one way: ``asym_openrlhf`` may import
``asym_eval`` (the grader, the option declarations), never the reverse.

Read from the source with ``ast``, so nothing is imported: module-level and function-level imports both count
(a lazy import in a function is still a dependency, and a cycle through one is still a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"asym_openrlhf": ROOT / "asym_openrlhf", "asym_eval": ROOT / "evaluation" / "asym_eval"}


def project_modules(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages (a package is its ``__init__``)."""
    modules = {}
    for name, folder in packages.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((name, *parts))] = path
    return modules


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from package import module" imports the module; "from module import name" the module.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:  # a name inside a module: the module
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(packages: dict[str, Path] = PACKAGES) -> dict[str, set[str]]:
    modules = project_modules(packages)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 50 and graph["asym_eval.grading"]  # the packages were read
    assert cycles(graph) == []


def test_the_evaluation_package_never_imports_the_training_package():
    graph = import_graph()
    upward = {
        module: sorted(t for t in targets if t.startswith("asym_openrlhf"))
        for module, targets in graph.items()
    }
    assert {m: t for m, t in upward.items() if m.startswith("asym_eval") and t} == {}


def test_the_cycle_finder_finds_a_lazy_import_cycle(tmp_path):
    package = tmp_path / "asym_eval"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from asym_eval.b import f\n")
    (package / "b.py").write_text("def f():\n    from asym_eval import a\n")
    (package / "c.py").write_text("from . import a\n")
    assert cycles(import_graph({"asym_eval": package})) == [["asym_eval.a", "asym_eval.b"]]
