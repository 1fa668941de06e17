"""Writing an evaluation: JSON for machines, a markdown table for people, a PNG chart for a quick look."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cascade.evaluation.metrics import METRICS

__all__ = ["markdown_table", "shown_path", "write_report"]


def markdown_table(reports: list[dict[str, Any]]) -> str:
    lines = ["| dataset | mode | " + " | ".join(METRICS) + " | p50 ms | p99 ms |",
             "|---|---|" + "---|" * (len(METRICS) + 2)]
    for report in reports:
        for mode, metrics in report["metrics"].items():
            latency = report["latency_ms"].get(mode, {})
            cells = [f"{metrics[metric]:.3f}" for metric in METRICS]
            cells += [f"{latency['p50']:.0f}" if latency else "", f"{latency['p99']:.0f}" if latency else ""]
            lines.append(f"| {report['dataset']} ({report['queries']} queries) | {mode} | " + " | ".join(cells) + " |")
    recalls = [f"{r['dataset']}: {r['first_stage_recall@100_vs_exact']:.3f}" for r in reports
               if "first_stage_recall@100_vs_exact" in r]
    if recalls:
        lines += ["", "First-stage Recall@100 against exact search: " + ", ".join(recalls)]
    return "\n".join(lines) + "\n"


def _chart(reports: list[dict[str, Any]], path: Path) -> None:
    figure, axes = plt.subplots(1, len(reports), figsize=(5 * len(reports), 4), squeeze=False)
    for axis, report in zip(axes[0], reports, strict=True):
        modes = list(report["metrics"])
        width = 0.8 / len(modes)
        for index, mode in enumerate(modes):
            axis.bar([m + index * width for m in range(len(METRICS))],
                     [report["metrics"][mode][metric] for metric in METRICS], width, label=mode)
        axis.set_xticks([m + width * (len(modes) - 1) / 2 for m in range(len(METRICS))], METRICS)
        axis.set_ylim(0, 1)
        axis.set_title(f"{report['dataset']} ({report['queries']} queries)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(reports: list[dict[str, Any]], folder: Path, name: str = "eval") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.json", folder / f"{name}.md", folder / f"{name}.png"]
    paths[0].write_text(json.dumps(reports, indent=2))
    paths[1].write_text(markdown_table(reports))
    _chart(reports, paths[2])
    return paths


def shown_path(value: Any) -> Any:
    """Paths as a reader can follow them on another machine: relative to here, or to the home folder."""
    if not isinstance(value, str | Path) or not Path(value).is_absolute():
        return value
    path = Path(value).resolve()
    for root, shown in ((Path.cwd(), "."), (Path.home(), "~")):
        if path.is_relative_to(root):
            return f"{shown}/{path.relative_to(root)}"
    return str(path)
