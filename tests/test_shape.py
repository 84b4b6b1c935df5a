"""The package's shape: one place knows Ray, small modules, a config that reads nothing."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sgpipe"
RAY_FOLDER = PACKAGE / "run" / "executors" / "ray"
MAX_LINES = 450


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ray_is_imported_in_the_ray_executors_folder_only():
    outside = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if RAY_FOLDER not in path.parents and "ray" in _imports(path)
    ]
    assert outside == []
    assert all("ray" in _imports(path) for path in (RAY_FOLDER / "pool.py", RAY_FOLDER / "__init__.py"))


def test_no_module_is_over_450_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_config_module_reads_no_file_and_no_url():
    """Fields and rules only: no storage, model or leakage code (the preflight checks the world)."""
    source = (PACKAGE / "config.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    # sgpipe.vocab.rlipv2: RLIPv2's table names and the paraphrase-file suffix test, nothing that reads
    assert imported <= {"__future__", "dataclasses", "pathlib", "typing", "sgpipe.errors", "sgpipe.fields",
                        "sgpipe.recipe", "sgpipe.records", "sgpipe.vocab.rlipv2"}  # fmt: skip
    assert "open(" not in source and ".read_" not in source and ".exists(" not in source
