"""Metric records of a run: ``<run>/metrics.jsonl`` (one JSON object per line, with ``split``
"train" or "val") or ``<run>/train.csv`` + ``<run>/val.csv``, plus TensorBoard event files in
``<run>/tensorboard``. A resumed run first drops the records written after its checkpoint, so
the files read as if the run had never been interrupted."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from .spec import LoggingConfig


def flatten(record: dict) -> dict:
    """Lists become numbered keys: ``{"loss": [a, b]}`` -> ``{"loss_0": a, "loss_1": b}``."""
    out = {}
    for k, v in record.items():
        if isinstance(v, (list, tuple)):
            out.update({f"{k}_{i}": x for i, x in enumerate(v)})
        else:
            out[k] = v
    return out


def _truncate_jsonl(path: Path, keep_upto: int) -> None:
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln).get("iteration", 0) <= keep_upto]
        atomic_write_text(path, "".join(ln + "\n" for ln in kept))


def _truncate_csv(path: Path, keep_upto: int) -> None:
    if path.exists():
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if rows:
            col = rows[0].index("iteration")
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows([rows[0]] + [r for r in rows[1:] if int(r[col]) <= keep_upto])
            atomic_write_text(path, buf.getvalue())


class MetricsLog:
    """Writes train/val records and images; ``resume_from`` is the checkpoint's iteration (None:
    a fresh run, which drops any records an earlier attempt in the directory left behind)."""

    def __init__(self, run_dir: str | Path, cfg: LoggingConfig, resume_from: int | None = None) -> None:
        self.run_dir, self.cfg = Path(run_dir), cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        keep_upto = -1 if resume_from is None else resume_from
        if cfg.format == "jsonl":
            _truncate_jsonl(self.run_dir / "metrics.jsonl", keep_upto)
        else:
            for split in ("train", "val"):
                _truncate_csv(self.run_dir / f"{split}.csv", keep_upto)
        self._csv_fields: dict[str, list[str]] = {}
        self.tb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=keep_upto + 1)

    def write(self, split: str, iteration: int, record: dict) -> None:
        """Appends one record (numbers, or lists of numbers per module)."""
        full = {"split": split, "iteration": iteration, **record}
        if self.cfg.format == "jsonl":
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(full) + "\n")
        else:
            self._write_csv(split, flatten({"iteration": iteration, **record}))
        if self.tb is not None:
            for k, v in flatten(record).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"{split}/{k}", v, iteration)

    def _write_csv(self, split: str, row: dict) -> None:
        path = self.run_dir / f"{split}.csv"
        fields = self._csv_fields.get(split)
        if fields is None:
            if path.exists() and path.stat().st_size:
                with path.open(newline="") as f:
                    fields = next(csv.reader(f))
            else:
                fields = list(row)
                with path.open("w", newline="") as f:
                    csv.writer(f).writerow(fields)
            self._csv_fields[split] = fields
        missing = [k for k in row if k not in fields]
        if missing:
            raise RuntimeError(f"{path}: record has columns {missing} that the file's header {fields} lacks")
        with path.open("a", newline="") as f:
            csv.DictWriter(f, fields).writerow(row)

    def image(self, tag: str, image: np.ndarray, iteration: int) -> None:
        """A uint8 (H, W) image to TensorBoard."""
        if self.tb is not None:
            self.tb.add_image(tag, image, iteration, dataformats="HW")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
