"""Prequential quality of freshrec and every baseline on the data sets in ``../shared/data``.

User protocol on MovieLens 100k (ratings >= 4), the Taobao user sample and the Taobao time slice;
session protocol on the DIGINETICA sample and on the sessions (30 min inactivity) of both Taobao
files. One table per data set, with each model's runtime; ``bench/out/quality.json`` gets every
figure and curve, ``bench/out/quality.md`` the tables in markdown, ``bench/out/quality-*.png``
the windowed Recall@10 / HR@10 curves.

    python -m bench.quality [--quick] [--only ml-100k] [--data ../shared/data]

Each figure is what ``freshrec evaluate`` prints for the same file and options (same seed). A
data set whose files are missing is skipped with a note: the product never needs these files.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import OUT_DIR, log, machine, parser
from freshrec.eval import DataSpec, evaluate, known_models
from freshrec.eval.datasets import TAOBAO_TYPES
from freshrec.eval.report import markdown, title

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
QUICK_EVENTS = 3_000
KS = (10, 20)
USER_MODELS = (
    "engine",
    "popularity",
    "covisitation",
    "mf",
    "pop",
    "pop-decayed",
    "itemknn",
    "isgd",
    "als-1000",
    "als-1000-recalc",
    "als-10000",
    "als-10000-recalc",
)
SESSION_MODELS = (
    "engine",
    "popularity",
    "covisitation",
    "mf",
    "pop",
    "successor",
    "itemknn",
    "sknn",
    "vsknn",
)


@dataclass(frozen=True, slots=True)
class Case:
    """One data set under one protocol."""

    name: str
    protocol: str
    file: str  # relative to the data directory
    fmt: str
    options: tuple[tuple[str, str], ...] = ()

    def spec(self, data: Path) -> DataSpec:
        return DataSpec(data / self.file, self.fmt, name=self.name, **dict(self.options))

    def command(self) -> str:
        """The ``freshrec evaluate`` command giving the same figures."""
        opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in self.options)
        return (
            f"freshrec evaluate ../shared/data/{self.file} --format {self.fmt} {opts} "
            f"--protocol {self.protocol} --models ..."
        ).replace("  ", " ")


_TAOBAO = (
    ("user_col", "0"),
    ("item_col", "1"),
    ("time_col", "4"),
    ("type_col", "3"),
    ("type_map", TAOBAO_TYPES),
)
_USER_SAMPLE = "taobao-userbehavior/userbehavior_user_sample.csv"
_TIME_SLICE = "taobao-userbehavior/userbehavior_time_slice.csv"
CASES = (
    Case("ml-100k", "user", "ml-100k/u.data", "ml100k"),
    Case("taobao-user-sample", "user", _USER_SAMPLE, "csv", _TAOBAO),
    Case("taobao-time-slice", "user", _TIME_SLICE, "csv", _TAOBAO),
    Case(
        "diginetica-sample",
        "session",
        "diginetica-sample/sample_train-item-views.csv",
        "diginetica",
    ),
    Case("taobao-user-sample-sessions", "session", _USER_SAMPLE, "csv", _TAOBAO),
    Case("taobao-time-slice-sessions", "session", _TIME_SLICE, "csv", _TAOBAO),
)


def run_case(case: Case, data: Path, quick: bool, seed: int, plots: bool) -> dict[str, Any]:
    spec = case.spec(data)
    wanted = USER_MODELS if case.protocol == "user" else SESSION_MODELS
    known = set(known_models())
    models = [m for m in wanted if m in known]
    limit = QUICK_EVENTS if quick else None
    report = evaluate(
        spec, case.protocol, models, KS, limit=limit, seed=seed, show_progress=sys.stderr.isatty()
    )
    report["command"] = case.command()
    report["missing_models"] = [m for m in wanted if m not in known]
    if plots:
        from freshrec.eval.plot import plot_curves

        plot_curves(report, OUT_DIR / f"quality-{case.name}.png")
    return report


def text_table(report: dict[str, Any]) -> str:
    """The markdown table, padded into aligned columns for the terminal."""
    lines = [line.strip("|").split("|") for line in markdown(report).splitlines()]
    del lines[1]
    cells = [[c.strip() for c in line] for line in lines]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    out = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = parser("Prequential quality of freshrec and the baselines on ../shared/data.")
    p.set_defaults(seed=0)
    p.add_argument("--data", type=Path, default=DATA_DIR, help="folder of the shared data sets")
    p.add_argument(
        "--only",
        action="append",
        choices=[c.name for c in CASES],
        help="run only this data set (repeatable)",
    )
    p.add_argument("--md", type=Path, default=OUT_DIR / "quality.md", help="markdown tables")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG curves")
    args = p.parse_args(argv)
    json_path = args.json or OUT_DIR / "quality.json"
    reports: dict[str, Any] = {}
    sections = []
    for case in CASES:
        if args.only and case.name not in args.only:
            continue
        if not (args.data / case.file).exists():
            log(f"{case.name}: {args.data / case.file} not found, skipped")
            continue
        log(f"{case.name}: {case.protocol} protocol")
        report = run_case(case, args.data, args.quick, args.seed, not args.no_plots)
        reports[case.name] = report
        print(f"\n{title(report)} ({report['seconds']:.0f} s)", flush=True)
        print(text_table(report), flush=True)
        if report["missing_models"]:
            print(f"(not available here: {', '.join(report['missing_models'])})")
        sections.append(f"### {title(report)}\n\n{markdown(report)}\n")
    if not reports:
        log(f"no data set found under {args.data}: nothing measured")
        return 0
    note = " (quick run: first 3,000 events of each protocol)" if args.quick else ""
    header = (
        f"## Prequential quality{note}\n\nProduced by `python -m bench.quality`; "
        "protocols and metrics in docs/evaluation.md. `seconds` is each model's whole "
        "run (learn + recommend + AUC scoring) on this machine.\n"
    )
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(header + "\n" + "\n".join(sections), encoding="utf-8")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    body = {"machine": machine(), "quick": args.quick, "seed": args.seed, "datasets": reports}
    json_path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {json_path} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
