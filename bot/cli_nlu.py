"""``gridbot nlu``: parse messages, train and evaluate bring-your-own category models.

gridbot nlu parse [--model DIR] [--json]          one message per stdin line
gridbot nlu train --tsv FILE... --out DIR         text<TAB>label files -> category model
gridbot nlu eval --model DIR --tsv FILE... [--json] [--plot FILE.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from collections.abc import Iterable, Sized
from pathlib import Path

from nlu.byo import MODEL_NAME, EvalReport, TsvError, evaluate, read_tsv, train_category_model
from nlu.dataset import TrainingDataError
from nlu.linear import LinearTextModel, ModelFileError
from nlu.taxonomy import DATA_DIR
from nlu.types import NluResult


def register(subparsers: argparse._SubParsersAction) -> None:
    nlu = subparsers.add_parser("nlu", help="understand messages; train and evaluate category models")
    sub = nlu.add_subparsers(dest="nlu_command", required=True)

    parse = sub.add_parser("parse", help="classify messages read from stdin, one per line")
    parse.add_argument("--model", type=Path, help="a category model directory from 'gridbot nlu train'")
    parse.add_argument("--json", action="store_true", help="one JSON object per line")
    parse.add_argument("--data", type=Path, default=DATA_DIR, help="training data directory (default nlu/data)")
    parse.add_argument("--cache", type=Path, default=Path("var/nlu-cache"), help="model cache directory")
    parse.set_defaults(func=_parse)

    train = sub.add_parser("train", help="train a category model from text<TAB>label files")
    train.add_argument("--tsv", type=Path, nargs="+", required=True, metavar="FILE")
    train.add_argument("--out", type=Path, required=True, metavar="DIR", help="model directory to write")
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="evaluate a category model on text<TAB>label files")
    ev.add_argument("--model", type=Path, required=True, metavar="DIR")
    ev.add_argument("--tsv", type=Path, nargs="+", required=True, metavar="FILE")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--plot", type=Path, metavar="FILE.png", help="draw the confusion matrix")
    ev.set_defaults(func=_eval)


def _fail(message: str) -> int:
    print(f"gridbot nlu: {message}", file=sys.stderr)
    return 2


def _parse(args: argparse.Namespace) -> int:
    from nlu.embedded import EmbeddedNlu

    try:
        backend = EmbeddedNlu(data_dir=args.data, cache_dir=args.cache, category_model=args.model)
    except (TrainingDataError, ModelFileError) as exc:
        return _fail(str(exc))
    for line in sys.stdin:
        result = backend.parse_sync(line.rstrip("\r\n"))
        print(json.dumps(result_json(result), ensure_ascii=False) if args.json else _result_line(result), flush=True)
    return 0


def result_json(r: NluResult) -> dict[str, object]:
    return {
        "text": r.text,
        "intent": r.intent,
        "confidence": r.confidence,
        "category": r.category,
        "category_confidence": r.category_confidence,
        "category_ranking": [[c, p] for c, p in r.category_ranking],
        "entities": [{"entity": e.entity, "value": e.value, "start": e.start, "end": e.end} for e in r.entities],
        "emergency": r.emergency,
        "emergency_kind": r.emergency_kind,
    }


def _result_line(r: NluResult) -> str:
    parts = [f"{r.intent} {r.confidence:.2f}"]
    if r.category:
        parts.append(f"{r.category} {r.category_confidence:.2f}")
    if r.emergency:
        parts.append(f"EMERGENCY {r.emergency_kind}")
    parts.extend(f"{e.entity}={e.value}" for e in r.entities)
    return "\t".join([*parts, r.text])


def _progress(items: Iterable, desc: str) -> Iterable:
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=len(items) if isinstance(items, Sized) else None, file=sys.stderr)


def _train(args: argparse.Namespace) -> int:
    try:
        rows = read_tsv(args.tsv)
        started = time.perf_counter()
        model = train_category_model(rows, progress=_progress)
    except TsvError as exc:
        return _fail(str(exc))
    model.save(args.out, MODEL_NAME)
    features = sum(len(b.vocab) for b in model.blocks)
    print(
        f"trained on {len(rows)} messages, {len(model.classes)} labels, {features} features "
        f"in {time.perf_counter() - started:.1f} s -> {args.out}"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    try:
        model = LinearTextModel.load(args.model, MODEL_NAME)
        rows = read_tsv(args.tsv)
    except (TsvError, ModelFileError) as exc:
        return _fail(str(exc))
    report = evaluate(model, rows)
    if args.plot:
        from nlu.plot import plot_confusion

        plot_confusion(report, args.plot)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(format_report(report))
        if args.plot:
            print(f"confusion matrix drawn to {args.plot}")
    return 0


def _pad(text: str, width: int) -> str:
    """Left-justify for a terminal, where CJK characters take two columns."""
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(width - shown, 0)


def format_report(report: EvalReport) -> str:
    width = max(
        8,
        *(
            len(_pad(label, 0)) + sum(unicodedata.east_asian_width(ch) in "WF" for ch in label)
            for label in report.labels
        ),
    )
    lines = [
        f"messages {report.messages}   accuracy {report.accuracy:.4f}   macro-F1 {report.macro_f1:.4f}   "
        f"parse p50 {report.p50_ms:.3f} ms   p99 {report.p99_ms:.3f} ms",
        "",
        f"{_pad('label', width)}  precision  recall      F1  support",
    ]
    lines += [
        f"{_pad(c.label, width)}  {c.precision:9.4f}  {c.recall:6.4f}  {c.f1:6.4f}  {c.support:7d}"
        for c in report.per_class
    ]
    lines += ["", "confusion matrix (rows: truth, columns: prediction, in the order above)"]
    lines += [" ".join(f"{v:5d}" for v in row) for row in report.confusion]
    return "\n".join(lines)
