"""Report files shared by every `facetrack eval` kind: report.json and report.md (a column per model)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np


def stats(values) -> dict[str, float]:
    """Mean, median, SD and count of a list of numbers (empty dict for none)."""
    a = np.asarray(list(values), np.float64)
    a = a[np.isfinite(a)]
    if not len(a):
        return {}
    return {"mean": float(a.mean()), "median": float(np.median(a)), "sd": float(a.std()), "n": int(len(a))}


def share(flags: list[bool]) -> float | None:
    """Fraction of True among the flags (None for none)."""
    return float(np.mean(flags)) if flags else None


def skipped(counter: Counter) -> dict[str, int]:
    return dict(sorted(counter.items()))


def _flatten(node, prefix: str = "") -> dict[str, float]:
    rows: dict[str, float] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            rows.update(_flatten(v, f"{prefix} {k}".strip()))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        rows[prefix] = node
    return rows


def _cell(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:d}" if isinstance(v, int) else f"{v:.4g}"


def finite(node):
    """A copy with NaN and infinities as None: strict JSON has no NaN, and a figure without data is none."""
    if isinstance(node, dict):
        return {k: finite(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [finite(v) for v in node]
    if isinstance(node, float) and not np.isfinite(node):
        return None
    return node


def write_report(reports: dict[str, dict], out: Path, title: str, inputs: dict | None = None) -> dict:
    """reports: one report per model (label -> dict). Writes OUT/report.json and OUT/report.md; returns the
    JSON document. The Markdown table has one row per figure and one column per model."""
    out.mkdir(parents=True, exist_ok=True)
    reports = finite(reports)
    doc = {"title": title, "inputs": inputs or {}, "models": reports}
    (out / "report.json").write_text(json.dumps(doc, indent=1, allow_nan=False))
    flat = {label: _flatten(r) for label, r in reports.items()}
    keys = list(dict.fromkeys(k for rows in flat.values() for k in rows))
    labels = list(reports)
    lines = [f"# {title}", ""]
    lines += [f"- {k}: `{v}`" for k, v in (inputs or {}).items()]
    lines += ["", "| figure | " + " | ".join(labels) + " |", "| --- |" + " --- |" * len(labels)]
    lines += [f"| {k} | " + " | ".join(_cell(flat[lb].get(k)) for lb in labels) + " |" for k in keys]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return doc


def model_labels(folders: list[Path]) -> list[str]:
    """Short distinct column names for weights folders: their names, or full paths when names clash."""
    names = [f.name or str(f) for f in folders]
    return names if len(set(names)) == len(names) else [str(f) for f in folders]
