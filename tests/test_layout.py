"""The tests mirror the tree (docs/architecture.md, "Slices")."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def slices() -> list[str]:
    """The slice packages, as the import contract of pyproject.toml lists them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (contract,) = (contract for contract in contracts if contract["id"] == "slices")
    return [name.removeprefix("authbridge.") for name in contract["containers"]]


def test_every_slice_has_a_test_folder() -> None:
    missing = [name for name in slices() if not (TESTS / name / "__init__.py").is_file()]
    assert slices(), "pyproject.toml lists no slice"
    assert not missing, f"slices without tests/<slice>/: {missing}"


def test_no_test_module_imports_another_folders_test_module() -> None:
    crossing = []
    for module in TESTS.rglob("*.py"):
        folder = module.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported = node.module
            elif isinstance(node, ast.Import):
                imported = node.names[0].name
            else:
                continue
            package, _, leaf = imported.rpartition(".")
            if imported.startswith("tests.") and leaf.startswith("test_") and package != folder:
                crossing.append(f"{module.relative_to(ROOT)} imports {imported}")
    assert not crossing, "move shared steps to tests/support: " + "; ".join(crossing)
