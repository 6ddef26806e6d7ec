"""Bring-your-own-data benchmark on the complaints data: our category model vs. the baseline.

    .venv/bin/python bench/nlu_byo.py [--data ../shared/data/complaints] [--seeds 42,7,3]

Split (deterministic, by seed; one row per seed): 20 % of train_fulltext.tsv (title + details, i.e. whole
messages) is held out. Training gets the other 80 %, every title of train_titles.tsv except
the titles of held-out messages, and train_details_only.tsv (other messages). The split is
written as TSV to var/bench-nlu-byo/ and trained and evaluated through the real commands:

    gridbot nlu train --tsv var/bench-nlu-byo/train.tsv --out var/bench-nlu-byo/model
    gridbot nlu eval --model var/bench-nlu-byo/model --tsv var/bench-nlu-byo/heldout.tsv --json

Baseline, same split: scikit-learn character 1-3-gram TF-IDF (sublinear tf) + logistic
regression (C=10), the "plain" model the issue quotes at ~0.90 macro-F1.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "var" / "bench-nlu-byo"


def read(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text, _, label = line.partition("\t")
        if text.strip() and label.strip():
            rows.append((text, label))
    return rows


def split(data: Path, seed: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    full = read(data / "train_fulltext.tsv")
    order = list(range(len(full)))
    random.Random(seed).shuffle(order)
    n_held = len(full) // 5
    held = [full[i] for i in order[:n_held]]
    held_titles = {text.split(" ")[0] for text, _ in held}
    train = [full[i] for i in order[n_held:]]
    train += [r for r in read(data / "train_titles.tsv") if r[0] not in held_titles]
    train += read(data / "train_details_only.tsv")
    return train, held


def write(rows: list[tuple[str, str]], path: Path) -> None:
    path.write_text("".join(f"{t.replace(chr(9), ' ')}\t{label}\n" for t, label in rows), encoding="utf-8")


def baseline(train: list[tuple[str, str]], held: list[tuple[str, str]]) -> tuple[float, float, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    started = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    clf = LogisticRegression(C=10, max_iter=2000)
    clf.fit(vectorizer.fit_transform([t for t, _ in train]), [label for _, label in train])
    seconds = time.perf_counter() - started
    predicted = clf.predict(vectorizer.transform([t for t, _ in held]))
    truth = [label for _, label in held]
    return accuracy_score(truth, predicted), f1_score(truth, predicted, average="macro"), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "complaints")
    parser.add_argument("--seeds", default="42", help="comma-separated split seeds, e.g. 42,7,3")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    if not (args.data / "train_fulltext.tsv").is_file():
        print(f"no complaints data in {args.data} (expected train_fulltext.tsv)", file=sys.stderr)
        return 2
    print("| split seed | model | accuracy | macro-F1 | train s | parse p50 ms | parse p99 ms |")
    print("|---|---|---|---|---|---|---|")
    ours_f1, base_f1 = [], []
    for seed in (int(s) for s in args.seeds.split(",")):
        train, held = split(args.data, seed)
        OUT.mkdir(parents=True, exist_ok=True)
        write(train, OUT / "train.tsv")
        write(held, OUT / "heldout.tsv")
        gridbot = [sys.executable, "-m", "bot", "nlu"]
        started = time.perf_counter()
        subprocess.run(
            [*gridbot, "train", "--tsv", str(OUT / "train.tsv"), "--out", str(OUT / "model")],
            check=True,
            stderr=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        train_seconds = time.perf_counter() - started
        shown = subprocess.run(
            [
                *gridbot,
                "eval",
                "--model",
                str(OUT / "model"),
                "--tsv",
                str(OUT / "heldout.tsv"),
                "--json",
                "--plot",
                str(OUT / f"confusion-{seed}.png"),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        ours = json.loads(shown.stdout)
        ours_f1.append(ours["macro_f1"])
        print(
            f"| {seed} ({len(train)} train / {len(held)} held out) | gridbot nlu train | {ours['accuracy']:.4f} "
            f"| {ours['macro_f1']:.4f} | {train_seconds:.1f} | {ours['p50_ms']:.3f} | {ours['p99_ms']:.3f} |",
            flush=True,
        )
        if not args.skip_baseline:
            acc, f1, seconds = baseline(train, held)
            base_f1.append(f1)
            print(f"| {seed} | baseline char 1-3 TF-IDF + LR | {acc:.4f} | {f1:.4f} | {seconds:.1f} | | |", flush=True)
    print(f"\nmean macro-F1: gridbot {sum(ours_f1) / len(ours_f1):.4f}", end="")
    print(f", baseline {sum(base_f1) / len(base_f1):.4f}" if base_f1 else "")
    print(f"confusion matrices and the last split's model: {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
