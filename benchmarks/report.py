"""Renders benchmarks/results/*.json as the README's benchmark tables, with the target ratios.

The README holds each generated block between `<!-- begin benchmarks:NAME ... -->` and
`<!-- end benchmarks:NAME -->`; everything between them is rewritten from the results,
so the tables never drift from the measurements. Ratios are taken between contenders of
the same run (each workload's contenders run in alternating rounds, see `_harness.py`).

Usage:
    python benchmarks/report.py                 # rewrite README.md's blocks from the results
    python benchmarks/report.py --check         # exit status 1 if README.md is out of date
    python benchmarks/report.py results.json    # print one results file's tables
"""

import argparse
import json
import pathlib
import sys

import _report_gpu
import _report_tables as tables

HERE = pathlib.Path(__file__).resolve().parent
README = HERE.parent / "README.md"
RESULTS = HERE / "results"
# Block name -> the results files it renders, in order.
BLOCKS = {
    "training": ("training.json", "custom_steps.json", "input_pipeline.json"),
    "distribute": ("distribute.json",),
    "call_profile": ("call_profile.json",),
    "gpu": ("gpu.json",),  # bench_gpu.py: missing or a dry run -> "no GPU figures yet"
}
# Blocks that README.md may lack: skipped with a message instead of an error.
OPTIONAL_BLOCKS = ("call_profile",)


def render_report(report):
    """Markdown for one results file (any of the benchmarks' layouts)."""
    if "workloads" not in report:
        return tables.legacy(report)
    if report.get("script") == "bench_gpu.py":
        return _report_gpu.render(report)
    parts = []
    if report.get("quick"):
        parts.append("**Smoke-test settings (`--quick`): these figures are not a measurement.**")
    for name, workload in report["workloads"].items():
        renderer = tables.WORKLOADS.get(name)
        if renderer:
            parts.append(renderer(workload))
    targets = tables.targets(report["workloads"])
    if targets:
        parts.append(targets)
    return "\n\n".join(parts)


def render_file(path):
    return render_report(json.loads(pathlib.Path(path).read_text()))


def render_block(name, results_dir=RESULTS):
    if name == "gpu":
        path = results_dir / BLOCKS[name][0]
        return _report_gpu.readme_block(json.loads(path.read_text()) if path.exists() else None)
    parts = []
    for file_name in BLOCKS[name]:
        path = results_dir / file_name
        if path.exists():
            parts.append(render_file(path))
        else:
            parts.append(f"(`benchmarks/results/{file_name}`: not measured yet)")
    return "\n\n".join(parts)


def update(text, results_dir=RESULTS):
    """`text` with every benchmarks block rewritten; a missing marker is an error,
    except for `OPTIONAL_BLOCKS`' (skipped, with a message on stderr)."""
    for name in BLOCKS:
        begin = f"<!-- begin benchmarks:{name}"
        end = f"<!-- end benchmarks:{name} -->"
        start, stop = text.find(begin), text.find(end)
        if (start < 0 or stop < start) and name in OPTIONAL_BLOCKS:
            print(f"README.md has no '{begin} -->' ... '{end}' block: {name} skipped",
                  file=sys.stderr)
            continue
        if start < 0 or stop < start:
            raise ValueError(f"README.md has no '{begin} ... -->' ... '{end}' block")
        start = text.index("-->", start) + len("-->")
        text = text[:start] + "\n" + render_block(name, results_dir) + "\n" + text[stop:]
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", type=pathlib.Path,
                        help="print this results file's tables instead of updating README.md")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 if README.md differs from what the results give")
    parser.add_argument("--readme", type=pathlib.Path, default=README)
    args = parser.parse_args(argv)
    if args.results:
        print(render_file(args.results))
        return 0
    text = args.readme.read_text()
    updated = update(text)
    if args.check:
        if updated != text:
            print(f"{args.readme} is out of date: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        args.readme.write_text(updated)
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
