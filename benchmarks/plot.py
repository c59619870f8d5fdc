"""Charts of a throughput result: fps by stage, and fps by batch size (matplotlib: benchmark-only).

`python -m benchmarks.plot RESULT.json -o CHART.png` redraws the chart of a saved result;
`python -m benchmarks.plot benchmarks/results/*.json --table` prints the README table from the results.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark machines

import matplotlib.pyplot as plt

from trt_modnet.cli import run_main
from trt_modnet.errors import MattingError

STAGE_COLOURS = {"decode": "#4c72b0", "inference": "#dd8452", "encode": "#55a868", "end-to-end": "#c44e52"}
NAIVE_COLOUR = "#8c8c8c"


def plot_results(result: Mapping[str, Any], path: Path) -> None:
    """Write a two-panel PNG: stages at the comparison batch size, and stages against batch size."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    try:
        _by_stage(left, result)
        _by_batch(right, result)
        fig.suptitle(_title(result), fontsize=10)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def _title(result: Mapping[str, Any]) -> str:
    inp, s = result["input"], result["settings"]
    fmt = s["format"] or "default format"
    return (
        f"{Path(inp['video']).name} {inp['width']}x{inp['height']}, ref size {s['ref_size']}, "
        f"{s['content']} ({fmt}), {result['runner']}; {result['system']['cpu']}"
    )


def _by_stage(ax: Any, result: Mapping[str, Any]) -> None:
    f = result["figures"]
    batch = str(max(int(b) for b in f["inference_fps"]))
    bars = {
        "decode": f["decode_fps"],
        f"inference\n(batch {batch})": f["inference_fps"][batch],
        "encode": f["encode_fps"],
        f"end-to-end\n(batch {batch})": f["end_to_end_fps"][batch],
    }
    colours = list(STAGE_COLOURS.values())
    if "naive_fps" in f:
        bars["ours, composite\nH.264"] = f["composite_end_to_end_fps"]
        bars["naive loop\n(composite mp4v)"] = f["naive_fps"]
        colours += [STAGE_COLOURS["end-to-end"], NAIVE_COLOUR]
    drawn = ax.bar(list(bars), list(bars.values()), color=colours)
    ax.bar_label(drawn, fmt="%.3g", fontsize=8)
    ax.set_yscale("log")  # decode runs ~100x faster than inference on a CPU
    ax.set_ylabel("frames per second (log)")
    eff = f["pipeline_efficiency"][batch]
    ax.set_title(f"fps by stage (pipeline efficiency {eff:.2f})", fontsize=10)
    ax.tick_params(axis="x", labelsize=8)


def _by_batch(ax: Any, result: Mapping[str, Any]) -> None:
    f = result["figures"]
    batches = sorted(int(b) for b in f["inference_fps"])
    ax.plot(batches, [f["inference_fps"][str(b)] for b in batches], "o-", color=STAGE_COLOURS["inference"])
    ax.plot(batches, [f["end_to_end_fps"][str(b)] for b in batches], "s-", color=STAGE_COLOURS["end-to-end"])
    ax.axhline(f["decode_fps"], color=STAGE_COLOURS["decode"], linestyle=":")
    ax.axhline(f["encode_fps"], color=STAGE_COLOURS["encode"], linestyle=":")
    labels = ["inference only", "end-to-end", "decode only", "encode only"]
    if "naive_fps" in f:
        ax.axhline(f["naive_fps"], color=NAIVE_COLOUR, linestyle="--")
        labels.append("naive loop")
    ax.set_yscale("log")
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("frames per second (log)")
    ax.set_title("fps by batch size", fontsize=10)
    ax.legend(labels, fontsize=8)


TABLE_HEADER = (
    "| input | runner | decode | inference | encode | end-to-end | efficiency | ours, composite H.264 "
    "| naive loop | speed-up (like-for-like / default output) | peak RSS short / long (ratio) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(result: Mapping[str, Any]) -> str:
    """One README table row (fps at the largest batch size) from a result, so the table matches the JSON."""
    f, inp, s = result["figures"], result["input"], result["settings"]
    batch = str(max(int(b) for b in f["inference_fps"]))
    cells = [
        f"{Path(inp['video']).name} ({inp['width']}x{inp['height']})",
        result["runner"],
        f"{f['decode_fps']:.1f}",
        f"{f['inference_fps'][batch]:.2f} (batch {batch})",
        f"{f['encode_fps']:.2f} ({s['content']}, {s['format'] or 'default'})",
        f"{f['end_to_end_fps'][batch]:.2f}",
        f"{f['pipeline_efficiency'][batch]:.2f}",
        *_naive_cells(f),
        _memory_cell(f),
    ]
    return "| " + " | ".join(cells) + " |"


def _naive_cells(f: Mapping[str, Any]) -> list[str]:
    if "naive_fps" not in f:
        return ["-", "-", "-"]
    return [
        f"{f['composite_end_to_end_fps']:.2f}",
        f"{f['naive_fps']:.2f}",
        f"{f['speedup_like_for_like']:.2f}x / {f['speedup_default_output']:.2f}x",
    ]


def _memory_cell(f: Mapping[str, Any]) -> str:
    if "peak_rss_short_mb" not in f:
        return "-"
    short, long, ratio = f["peak_rss_short_mb"], f["peak_rss_long_mb"], f["memory_ratio_long_short"]
    return f"{short:.0f} / {long:.0f} MB ({ratio:.2f})"


def _load(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise MattingError(f"{path}: cannot read the result ({exc})") from None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.plot", description="Chart throughput results, or print their README table."
    )
    p.add_argument("results", type=Path, nargs="+", help="JSON from `python -m benchmarks.throughput --json`")
    p.add_argument("-o", "--output", type=Path, help="PNG to write (one result only)")
    p.add_argument("--table", action="store_true", help="print the README table rows (markdown)")
    args = p.parse_args(argv)
    if args.output is None and not args.table:
        p.error("give -o PNG and/or --table")
    if args.output is not None and len(args.results) != 1:
        p.error("-o charts one result; give one JSON file")
    results = [_load(path) for path in args.results]
    if args.output is not None:
        plot_results(results[0], args.output)
    if args.table:
        print(TABLE_HEADER)
        for result in results:
            print(table_row(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
