"""``gleam-plan --spec SPEC [--set KEY=VALUE ...] --budget SIZE [--device cpu|cuda] [--json]
[--max-unrolls] [--no-measure]``: which training strategy fits a memory budget, and which of
those is fastest (see docs/planning.md). Exit status: 0 a candidate fits, 1 nothing fits (the
advice says what would), 2 bad spec or arguments."""

from __future__ import annotations

import argparse
import json
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gleam-plan", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--spec", required=True, help="YAML training spec (its data need not exist here: then the "
                                                 "data kind's full-scale geometry is planned)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a spec entry as in gleam-train, e.g. --set model.unrolls=12; repeatable")
    p.add_argument("--budget", required=True, help="memory per device: 24GiB, 512MiB, 1.5GB or bytes")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="target device (default: the spec's device type)")
    p.add_argument("--json", action="store_true", help="print only one JSON object")
    p.add_argument("--max-unrolls", action="store_true",
                   help="also report, per strategy, the largest number of unrolls that fits")
    p.add_argument("--no-measure", action="store_true",
                   help="predict time by counting unroll passes instead of timing one unroll")
    return p


def _table(result) -> str:
    from ..sizes import format_size
    rows = [f"{'candidate':<26}{'peak':>11}{'time vs e2e':>13}  fits"]
    for e in result.estimates:
        mark = " <- choice" if result.choice is e else ""
        rows.append(f"{e.candidate.label():<26}{format_size(e.report.peak_bytes):>11}{e.relative_time:>12.2f}x  "
                    f"{'yes' if e.fits else 'no'}{mark}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from ..plan import plan
    from ..sizes import format_size, parse_size
    from ..train.spec import load_spec

    try:
        budget = parse_size(args.budget)
    except ValueError as exc:
        print(f"gleam-plan: --budget: {exc}", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args.spec, args.overrides, check_data=False)
        import torch
        device = args.device or torch.device(spec.device).type
        result = plan(spec, budget, device=device, measure=not args.no_measure, with_max_unrolls=args.max_unrolls)
    except (ValueError, RuntimeError, OSError) as exc:  # SpecError is a ValueError
        print(f"gleam-plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        print(f"{result.geometry.describe()}; {result.unrolls} unrolls; budget {format_size(budget)} on {device}")
        print(f"time: {result.timing}")
        for note in result.notes:
            print(f"note: {note}")
        print(_table(result))
        if result.max_unrolls is not None:
            print("largest unroll count that fits, per strategy:")
            for strategy, m in result.max_unrolls.items():
                how = (f" (segment {m['segments']})" if m["segments"] else f" ({m['modules']} modules)"
                       if m["modules"] else "")
                more = " or more" if m["capped"] else ""
                peak = f", peak {format_size(m['peak_bytes'])}" if m["peak_bytes"] else ""
                print(f"  {strategy:<11} {m['unrolls']}{more}{how}{peak}")
        if result.choice is not None:
            print(f"choice: {result.choice.candidate.label()}: gleam-train --spec {args.spec} "
                  + " ".join(f"--set {s}" for s in [*args.overrides, *result.choice.candidate.overrides()]))
    if result.choice is None:
        print(f"gleam-plan: {result.advice()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
