"""The import rules that keep the data flow one-way: facetrack never imports train, Qt lives only in
facetrack/app, and no module imports itself back through others (function-local imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT = ("PySide6", "pyqtgraph")


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    mods = {**_modules("facetrack"), **_modules("train")}
    return {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}


def test_facetrack_never_imports_train() -> None:
    for mod, path in _modules("facetrack").items():
        bad = [i for i in _imports(path) if i == "train" or i.startswith("train.")]
        assert not bad, f"{mod} imports {bad}: the app must not depend on the training code"


def test_qt_only_under_app() -> None:
    for package in ("facetrack", "train"):
        for mod, path in _modules(package).items():
            if mod.startswith("facetrack.app"):
                continue
            bad = [i for i in _imports(path) if i.split(".")[0] in QT]
            assert not bad, f"{mod} imports {bad}: Qt belongs in facetrack/app"


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_environment_is_read_only_in_paths() -> None:
    """facetrack's own variables are read in facetrack.paths alone; the app may only undo the Qt plugin path
    that cv2 sets (facetrack.app.main.drop_cv2_qt_paths)."""
    allowed = {"facetrack.paths", "facetrack.app.main"}
    for mod, path in _modules("facetrack").items():
        text = path.read_text()
        if mod not in allowed:
            assert "environ" not in text and "getenv" not in text, f"{mod} reads the environment"
    main = (ROOT / "facetrack" / "app" / "main.py").read_text()
    assert "FACETRACK_" not in main


def test_top_level_is_small() -> None:
    loose = sorted(p.stem for p in (ROOT / "facetrack").glob("*.py") if p.stem != "__init__")
    assert loose == ["cli", "errors", "paths"], loose
