"""The layers point one way: ``engine`` ← ``actors`` ← ``lab``.

Read from each module's syntax tree (every import, also those inside
functions), not by grep: nothing in ``engine/`` imports ``actors`` or ``lab``,
nothing in ``actors/`` imports ``lab``, and outside ``engine/`` nothing reaches
into its private kernels (``engine.kernels``); the public names live in
``engine.messages``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"engine": ("actors", "lab"), "actors": ("lab",), "lab": ()}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in ``path``, relative ones made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..y import z
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_module_imports_a_higher_layer(layer):
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in modules(layer)
        for line, name in imports_of(path)
        if name.split(".")[0] in FORBIDDEN[layer]
    ]
    assert wrong == []


@pytest.mark.parametrize("layer", ["actors", "lab"])
def test_only_the_engine_uses_its_private_kernels(layer):
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in modules(layer)
        for line, name in imports_of(path)
        if name.startswith("engine.kernels")
    ]
    assert wrong == []


def test_the_check_sees_imports_inside_functions():
    # The check can fail: a lazy import of a higher layer is found.
    module = ROOT / "actors" / "_layer_probe_tmp.py"
    module.write_text("def f():\n    from lab.replay import run\n    import lab.config\n")
    try:
        found = [name for _, name in imports_of(module)]
    finally:
        module.unlink()
    assert "lab.replay" in found and "lab.config" in found
