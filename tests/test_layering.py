"""Layering: nothing used at inference (scale-out included) imports training, the CLI, synthesis or robustness code.

Dependencies point down the flow (docs/architecture.md): ``train``, ``synth`` and ``robust``
may use ``rerank``, ``retrieve``, ``llm``, ``index`` and ``data``, never the other way round.
The check parses imports with :mod:`ast` (so imports inside functions, ``if TYPE_CHECKING``
blocks, relative imports and ``importlib.import_module("...")`` with a literal name all count)
and reports each offending import as ``file:line imports module``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: packages and modules used at inference (a missing one, e.g. a package not created yet, is skipped)
INFERENCE = ["rankkit/rerank", "rankkit/retrieve", "rankkit/index", "rankkit/llm", "rankkit/data",
             "rankkit/types.py", "rankkit/evaluate.py", "rankkit/cache.py", "rankkit/precision.py",
             "rankkit/models.py", "rankkit/scale"]
#: modules (and, with their submodules, packages) that inference code must not import
FORBIDDEN = ["rankkit.train", "rankkit.cli", "rankkit.cli_train", "rankkit.synth", "rankkit.robust"]


def module_name(path: Path, root: Path) -> str:
    """The dotted module name of ``path`` (a ``.py`` file under ``root``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every import in ``tree``, relative ones resolved against ``module``.

    For ``from a import b`` both ``a`` and ``a.b`` are yielded (``b`` may be a submodule).
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level - 1 <= len(package) else []
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target:
                yield node.lineno, target
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{target}.{alias.name}" if target else alias.name
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
                   or isinstance(node.func, ast.Name) and node.func.id in {"import_module", "__import__"})):
            yield node.lineno, node.args[0].value


def _is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def python_files(paths: Iterable[Path]) -> list[Path]:
    """Every ``.py`` file among ``paths`` (folders are walked); absent paths are skipped."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts))
        elif path.suffix == ".py" and path.is_file():
            out.append(path)
    return out


def layering_violations(files: Iterable[Path], root: Path) -> list[str]:
    """``"file:line imports module"`` for each forbidden import in ``files`` (paths relative to ``root``)."""
    found: list[str] = []
    for path in files:
        rel = path.relative_to(root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
        seen: set[tuple[int, str]] = set()
        for line, name in imported_modules(tree, module_name(path, root), path.name == "__init__.py"):
            # ``from rankkit.train import a, b`` is one violation (rankkit.train), not three
            covered = any((line, ".".join(name.split(".")[:i])) in seen for i in range(1, name.count(".") + 2))
            if _is_forbidden(name) and not covered:
                seen.add((line, name))
                found.append(f"{rel.as_posix()}:{line} imports {name}")
    return sorted(found, key=lambda s: (s.split(":")[0], int(s.split(":")[1].split()[0]), s))


def test_inference_code_does_not_import_training_cli_synth_or_robust() -> None:
    files = python_files(ROOT / p for p in INFERENCE)
    assert len(files) > 10, f"too few modules found under {ROOT}: {files}"
    violations = layering_violations(files, ROOT)
    assert not violations, "inference code imports training/CLI/synth/robust code:\n" + "\n".join(violations)


def test_checker_reports_each_violation_with_file_and_line(tmp_path: Path) -> None:
    pkg = tmp_path / "rankkit" / "rerank"
    pkg.mkdir(parents=True)
    (tmp_path / "rankkit" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from ..synth import duqgen\n")
    (pkg / "bad.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from rankkit.train.trainer import x\n"
        "from rankkit import train, types\n"
        "from ..robust.certify import crq\n"
        "if TYPE_CHECKING:\n"
        "    from rankkit.cli_train import register\n"
        "\n"
        "def f() -> None:\n"
        "    import rankkit.cli\n"
        "    import importlib\n"
        "    importlib.import_module('rankkit.train.loop')\n"
        "    from .. import evaluate, cache\n"
        "    from . import base\n"
        "    import rankkit.client_side\n"
    )
    (pkg / "good.py").write_text("from rankkit.types import Run\nfrom .bad import f\nimport rankkit.retrieve.bm25\n")
    files = python_files([tmp_path / "rankkit" / "rerank", tmp_path / "rankkit" / "absent"])
    assert [p.name for p in files] == ["__init__.py", "bad.py", "good.py"]
    assert layering_violations(files, tmp_path) == [
        "rankkit/rerank/__init__.py:1 imports rankkit.synth",
        "rankkit/rerank/bad.py:3 imports rankkit.train.trainer",
        "rankkit/rerank/bad.py:4 imports rankkit.train",
        "rankkit/rerank/bad.py:5 imports rankkit.robust.certify",
        "rankkit/rerank/bad.py:7 imports rankkit.cli_train",
        "rankkit/rerank/bad.py:10 imports rankkit.cli",
        "rankkit/rerank/bad.py:12 imports rankkit.train.loop",
    ]
