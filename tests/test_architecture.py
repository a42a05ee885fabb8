"""The house rules a newcomer relies on (docs/architecture.md): no import cycles between the
library's modules, the library never imports Airflow, and code comments cite only documents
that are in the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cxpipeline"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Modules of the package that ``path`` imports anywhere (top level or inside functions: a
    cycle hidden in a function is still a cycle), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    typing_only = {id(inner) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for inner in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "cxpipeline" or m.startswith("cxpipeline.")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # "from cxpipeline.x import y" names module x (or x.y when y is a submodule)
        targets = {m for m in _imports(path, name) if m in modules}
        graph[name] = targets - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def connect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return result


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_library_modules():
    graph = _graph()
    assert len(graph) > 40  # the walk found the package
    assert _cycles(graph) == []


def test_the_library_never_imports_airflow():
    offenders = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+airflow\b", p.read_text(encoding="utf-8"), re.M)]
    assert offenders == []


def test_comments_cite_only_documents_in_the_repository():
    cited = re.compile(r"\b((?:docs|notes)/[\w./-]+\.md|DESIGN\.md)")
    missing = set()
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "dags").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]:
        for match in cited.finditer(path.read_text(encoding="utf-8")):
            if not (ROOT / match.group(1)).is_file():
                missing.add(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert sorted(missing) == []


def test_every_registry_metric_names_its_code_and_its_test():
    """Each metric's module and test exist, and the test names the metric (docs/architecture.md,
    "Where to add things"): a metric cannot be defined without code and a test to point to."""
    from cxpipeline.metrics.registry import METRICS

    problems = []
    for metric in METRICS.values():
        if not (ROOT / metric.module).is_file():
            problems.append(f"{metric.name}: no module {metric.module}")
        test = ROOT / metric.test
        if not test.is_file():
            problems.append(f"{metric.name}: no test {metric.test}")
        elif metric.name not in test.read_text(encoding="utf-8"):
            problems.append(f"{metric.name}: not named in {metric.test}")
    assert len(METRICS) > 50 and problems == []
