"""The data layer reads in one direction: each module imports only the stages before it."""

from __future__ import annotations

import ast
from pathlib import Path

import recscale.data

DATA = Path(recscale.data.__file__).parent

# Pipeline order: resolve files -> read -> preprocess -> cache -> split, then what works on
# a loaded dataset. A module may import only modules listed before it.
ORDER = [
    "dataset",
    "download",
    "specs",
    "catalogue",
    "sources",
    "readers_base",
    "readers_lines",
    "readers_tables",
    "readers",
    "preprocess",
    "stats",
    "cache",
    "store",
    "splits",
    "batching",
    "ranking",
    "merge",
    "quality",
    "synthetic",
    "attributes",
    "titles",
    "item_text",
    "text_embeddings",
]


def _data_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) for every import of a ``recscale.data`` module in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "recscale.data":
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recscale.data."):
            out.append((node.module.split(".")[2], [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            out += [
                (alias.name.split(".")[2], [])
                for alias in node.names
                if alias.name.startswith("recscale.data.")
            ]
    return out


def test_every_module_has_a_place_in_the_order():
    modules = {p.stem for p in DATA.glob("*.py")} - {"__init__"}
    missing = sorted(modules - set(ORDER))
    assert not missing, f"add {missing} to ORDER in {__file__} at its pipeline stage"


def test_modules_import_only_earlier_stages_and_no_private_names():
    for module in ORDER:
        for imported, names in _data_imports(DATA / f"{module}.py"):
            assert ORDER.index(imported) < ORDER.index(module), f"{module} imports {imported}"
            private = [n for n in names if n.startswith("_")]
            assert not private, f"{module} imports private {private} from {imported}"
