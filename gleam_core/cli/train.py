"""``gleam-train --spec spec.yaml [--set key.path=value ...] [--resume]``: train an unrolled
network as a spec describes (see docs/training.md). Exit status: 0 done, 1 training failed
(e.g. the loss diverged), 2 bad spec or arguments, 130 interrupted."""

from __future__ import annotations

import argparse
import sys


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gleam-train", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--spec", required=True, help="YAML training spec")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a spec entry (value parsed as YAML), e.g. --set strategy=gleam; repeatable")
    p.add_argument("--resume", action="store_true", help="continue the run in the spec's output directory from its "
                                                         "latest checkpoint")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from ..train.distributed.world import launched
    if launched():  # started by torchrun: docs/distributed.md
        from ..train.distributed.launch import main as distributed_main
        return distributed_main(args.spec, args.overrides, args.resume)
    from ..train.spec import load_spec
    from ..train import Trainer, TrainingDiverged

    try:
        spec = load_spec(args.spec, args.overrides)
        trainer = Trainer(spec, resume=args.resume)
    except (ValueError, RuntimeError, OSError) as exc:  # SpecError is a ValueError
        print(f"gleam-train: {exc}", file=sys.stderr)
        return 2
    from .. import ops
    # Which kernels run, and why not the compiled ones when they don't (benchmarking the
    # reference by accident is the failure this line prevents).
    print("ops backend: " + ", ".join(f"{dev} {name}" for dev, name in ops.backend().items()), file=sys.stderr)
    try:
        trainer.run()
    except TrainingDiverged as exc:
        print(f"gleam-train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"run directory: {trainer.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
