"""Accuracy of the embedded NLU on our own held-out messages (nlu/data/eval/*.tsv).

    .venv/bin/python bench/nlu_heldout.py [--misses]

heldout.tsv was looked at while the training data and the emergency rules were developed;
fresh.tsv was written last and scored once for the reported figures. Neither is trained on.
Columns: intent accuracy, category accuracy (report_issue messages), emergency recall,
right emergency kind, false alarms (emergency flagged on a message that is none).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from nlu.embedded import EmbeddedNlu
    from nlu.heldout import load_heldout, score_heldout

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--misses", action="store_true", help="list the messages that were got wrong")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        backend = EmbeddedNlu(cache_dir=Path(cache))
    print("| set | messages | intent acc | category acc | emergency recall | right kind | false alarms |")
    print("|---|---|---|---|---|---|---|")
    for path in sorted((REPO / "nlu" / "data" / "eval").glob("*.tsv")):
        s = asyncio.run(score_heldout(backend, load_heldout(path)))
        print(
            f"| {path.name} | {s.cases} | {s.intent_accuracy:.3f} | {s.category_accuracy:.3f} "
            f"| {s.emergency_recall:.3f} | {s.emergency_kind_accuracy:.3f} | {s.false_alarm_rate:.3f} |"
        )
        if args.misses:
            for m in s.misses:
                c = m.case
                print(
                    f"    {c.text} | want {c.intent} {c.category} {c.emergency_kind} "
                    f"| got {m.intent} {m.category} {m.emergency_kind}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
