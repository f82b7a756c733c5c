"""The package's imports point down the layers and form no cycle (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import recscale

PACKAGE = Path(recscale.__file__).parent
# errors/registry/config/numerics < data < models < eval < train < scaling < cli
LAYERS = {"errors": 0, "registry": 0, "config": 0, "numerics": 0, "__init__": 0}
LAYERS |= {"data": 1, "models": 2}
LAYERS |= {"eval": 3, "train": 4, "scaling": 5, "cli": 6}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS["__init__" if len(parts) == 1 else parts[1]]


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str) -> set[str]:
    """Every recscale module ``module`` imports at run time (anywhere in the file, so a
    lazy import inside a function counts; ``if TYPE_CHECKING:`` blocks do not)."""
    tree = ast.parse(MODULES[module].read_text())
    skipped = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _type_checking(block)
        for child in block.body
        for n in ast.walk(child)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from recscale.models import gpt" names a submodule; "... import ModelConfig"
            # names something in the package itself.
            names = [
                full if (full := f"{node.module}.{a.name}") in MODULES else node.module
                for a in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name.startswith("recscale") and name != module:
                found.add(name)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_graph_sees_the_package():
    assert "recscale.train.trainer" in GRAPH
    assert "recscale.eval.evaluator" in GRAPH["recscale.train.trainer"]


def test_no_module_imports_from_a_higher_layer():
    upward = sorted(
        f"{m} -> {dep}" for m, deps in GRAPH.items() for dep in deps if layer(dep) > layer(m)
    )
    assert upward == []


def test_no_import_cycles():
    cycles, state = [], dict.fromkeys(GRAPH, 0)  # 0 new, 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH[node]):
            if state[dep] == 1:
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif state[dep] == 0:
                visit(dep, [*stack, dep])
        state[node] = 2

    for module in sorted(GRAPH):
        if state[module] == 0:
            visit(module, [module])
    assert cycles == []


def test_no_module_is_over_450_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
