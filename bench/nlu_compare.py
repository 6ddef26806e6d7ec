"""Embedded backend vs. Rasa DIET on the same training data, side by side, in one run.

    .venv/bin/python bench/nlu_compare.py                 # held-out set if there is one, else a split
    .venv/bin/python bench/nlu_compare.py --eval split    # always a deterministic 80/20 split
    .venv/bin/python bench/nlu_compare.py --skip-rasa     # embedded only (no .rasa-venv needed)

Needs `make rasa-setup` for the Rasa column (it runs scripts/rasa-train.sh and scripts/rasa-serve.sh
from .rasa-venv in subprocesses; nothing is imported from Rasa here).

What is measured, on the same train/eval split for both:
- labels are the Rasa intents of nlu/data: ``report_issue+<category>`` or another intent id, so
  accuracy and macro-F1 cover intents and categories at once (macro over the labels of the eval set);
- intent accuracy (10 intents), category accuracy (on reports only), emergency recall (eval rows that
  carry an emergency flag; Rasa's flag comes from the embedded backend, see nlu/rasa_http.py);
- training: wall time and peak RSS of the training process tree (``os.wait4`` rusage), in a fresh
  process with an empty cache, so imports and feature extraction count for both;
- parse latency p50/p99 per message, one at a time, after warm-up: the embedded backend in-process,
  Rasa as the HTTP round trip to ``POST /model/parse`` on loopback (what gridbot waits for);
- serving RSS: the embedded model loaded in a fresh Python process after the eval messages vs. the
  ``rasa run`` server process after the same messages.

Eval data: ``nlu/data/eval/*.tsv`` (held out by the data author, never given to either trainer) when
present; otherwise a deterministic split: every training example whose SHA-1 of the text falls in
bucket 0 of 5 is held out and removed from the copy of the data both backends train on.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO / "nlu" / "data"
NLU_KEY = re.compile(r"^nlu\s*:", re.MULTILINE)


# ---------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------
def nlu_files(data_dir: Path) -> list[Path]:
    files = sorted([*data_dir.glob("*.yml"), *data_dir.glob("*.yaml")])
    return [f for f in files if NLU_KEY.search(f.read_text(encoding="utf-8"))]


def bucket(text: str, n: int = 5) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % n


def read_eval_tsv(paths: list[Path]) -> list[dict[str, Any]]:
    """Rows ``text<TAB>label[<TAB>emergency]``; '#' lines and a header row starting with 'text' skipped.

    label is a Rasa intent name (``report_issue+noise``, ``greet``); emergency, if present, is 1/0,
    true/false, yes/no or an emergency kind (fire, gas, police, medical) meaning yes.
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.split("\t")
            if n == 1 and cols[0].strip().lower() == "text":
                continue
            if len(cols) < 2 or not cols[1].strip():
                raise SystemExit(f"{path}:{n}: expected text<TAB>label, got {line!r}")
            row: dict[str, Any] = {"text": cols[0], "label": cols[1].strip(), "emergency": None}
            if len(cols) > 2 and cols[2].strip():
                flag = cols[2].strip().lower()
                row["emergency"] = flag not in ("0", "false", "no", "n", "-", "none", "")
            rows.append(row)
    return rows


def build_split(src: Path, dst: Path) -> list[dict[str, Any]]:
    """Copy src's NLU data to dst without the held-out bucket; return the held-out rows."""
    import yaml

    from nlu.dataset import strip_annotations

    held: list[dict[str, Any]] = []
    for f in nlu_files(src):
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        for item in doc.get("nlu") or []:
            if "intent" not in item:
                continue
            keep = []
            for line in str(item.get("examples", "")).splitlines():
                raw = line.strip()[2:].strip() if line.strip().startswith("- ") else None
                if raw is None:
                    continue
                text, _ = strip_annotations(raw)
                if bucket(text) == 0:
                    held.append({"text": text, "label": item["intent"], "emergency": None})
                else:
                    keep.append(f"- {raw}")
            item["examples"] = "\n".join(keep) + "\n"
        with open(dst / f.name, "w", encoding="utf-8") as out:
            yaml.dump(doc, out, allow_unicode=True, sort_keys=False, width=10_000, Dumper=_block_dumper())
    return held


def _block_dumper() -> type:
    import yaml

    class BlockDumper(yaml.SafeDumper):
        pass

    def str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    BlockDumper.add_representer(str, str_presenter)
    return BlockDumper


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, list[dict[str, Any]], str]:
    data_dir = work / "data"
    data_dir.mkdir()
    shutil.copy(args.data / "categories.yml", data_dir / "categories.yml")
    if args.tsv:
        tsvs = [t.resolve() for t in args.tsv]
    else:
        tsvs = sorted((args.data / "eval").glob("*.tsv")) if (args.data / "eval").is_dir() else []
    if args.eval == "heldout" or (args.eval == "auto" and tsvs):
        if not tsvs:
            raise SystemExit(f"--eval heldout: no *.tsv in {args.data / 'eval'}")
        for f in nlu_files(args.data):
            shutil.copy(f, data_dir / f.name)
        rows = read_eval_tsv(tsvs)
        names = ", ".join(str(t.relative_to(REPO)) if t.is_relative_to(REPO) else str(t) for t in tsvs)
        how = f"held-out set {names} ({len(rows)} messages)"
    else:
        rows = build_split(args.data, data_dir)
        how = f"deterministic split: SHA-1(text) % 5 == 0 held out ({len(rows)} messages)"
    if not rows:
        raise SystemExit("no evaluation messages")
    return data_dir, rows, how


# ---------------------------------------------------------------------------------------------------
# measuring subprocesses
# ---------------------------------------------------------------------------------------------------
def run_measured(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> dict[str, float]:
    """Run cmd to completion; wall seconds and peak RSS (MiB) of it and its waited-for children."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:] if log else ""
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}\n{tail}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def label_of(result: Any) -> str:
    return f"report_issue+{result.category}" if result.intent == "report_issue" else result.intent


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


# ---------------------------------------------------------------------------------------------------
# embedded backend (run in child processes of this script)
# ---------------------------------------------------------------------------------------------------
def _embedded(data_dir: Path, cache_dir: Path) -> Any:
    from nlu.embedded import EmbeddedNlu

    return EmbeddedNlu(data_dir=data_dir, categories_file=data_dir / "categories.yml", cache_dir=cache_dir)


def child_embedded_train(data_dir: Path, cache_dir: Path) -> None:
    _embedded(data_dir, cache_dir)


def child_embedded_eval(data_dir: Path, cache_dir: Path, rows_file: Path, out_file: Path) -> None:
    rows = json.loads(rows_file.read_text(encoding="utf-8"))
    nlu = _embedded(data_dir, cache_dir)  # loads from the cache the training child wrote

    async def go() -> dict[str, Any]:
        for r in rows[:50]:  # warm-up
            await nlu.parse(r["text"])
        preds, lat = [], []
        for r in rows:
            t0 = time.perf_counter()
            res = await nlu.parse(r["text"])
            lat.append((time.perf_counter() - t0) * 1000)
            preds.append({"label": label_of(res), "emergency": res.emergency})
        return {"preds": preds, "latency_ms": lat, "rss_mib": rss_mib(os.getpid())}

    out_file.write_text(json.dumps(asyncio.run(go())), encoding="utf-8")


def bench_embedded(data_dir: Path, rows: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    cache = work / "embedded-cache"
    train = run_measured(
        [sys.executable, __file__, "_embedded-train", str(data_dir), str(cache)], log=work / "embedded-train.log"
    )
    rows_file, out_file = work / "rows.json", work / "embedded-eval.json"
    rows_file.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    run_measured(
        [sys.executable, __file__, "_embedded-eval", str(data_dir), str(cache), str(rows_file), str(out_file)],
        log=work / "embedded-eval.log",
    )
    ev = json.loads(out_file.read_text(encoding="utf-8"))
    return {"train": train, **ev}


# ---------------------------------------------------------------------------------------------------
# Rasa
# ---------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    import aiohttp

    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"rasa server exited with {proc.returncode}")
            try:
                async with session.get(f"{url}/status", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200 and (await resp.json()).get("model_file"):
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.5)
    raise SystemExit(f"rasa server not ready after {timeout_s:.0f} s")


async def _rasa_parse_all(url: str, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
    import aiohttp

    from nlu.rasa_http import result_from_rasa

    preds, lat = [], []
    async with aiohttp.ClientSession() as session:

        async def ask(text: str) -> dict[str, Any]:
            async with session.post(f"{url}/model/parse", json={"text": text}) as resp:
                resp.raise_for_status()
                return await resp.json()

        for r in rows[:50]:  # warm-up
            await ask(r["text"])
        for r in rows:
            t0 = time.perf_counter()
            data = await ask(r["text"])
            lat.append((time.perf_counter() - t0) * 1000)
            res = result_from_rasa(r["text"], data) if data.get("intent", {}).get("name") else None
            preds.append({"label": label_of(res) if res else "<none>", "emergency": None})
    return preds, lat


def bench_rasa(
    data_dir: Path, rows: list[dict[str, Any]], work: Path, venv: Path, config: Path
) -> dict[str, Any]:
    if not (venv / "bin" / "rasa").exists():
        raise SystemExit(f"{venv}/bin/rasa missing: run `make rasa-setup`, or pass --skip-rasa")
    models = work / "rasa-models"
    env = {
        **os.environ,
        "RASA_VENV": str(venv),
        "NLU_DATA": str(data_dir),
        "RASA_MODELS": str(models),
        "RASA_CACHE_DIRECTORY": str(work / "rasa-cache"),
        "RASA_CONFIG": str(config),
    }
    train = run_measured(["bash", str(REPO / "scripts/rasa-train.sh")], env=env, log=work / "rasa-train.log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env.update(RASA_PORT=str(port), RASA_MODEL=str(models / "gridbot-nlu.tar.gz"))
    with open(work / "rasa-serve.log", "wb") as log:
        proc = subprocess.Popen(
            ["bash", str(REPO / "scripts/rasa-serve.sh")], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:
        t0 = time.perf_counter()
        asyncio.run(_wait_ready(url, proc, 300))
        startup = time.perf_counter() - t0
        preds, lat = asyncio.run(_rasa_parse_all(url, rows))
        serve_rss = rss_mib(proc.pid)  # rasa-serve.sh execs rasa: this is the server process
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {"train": train, "preds": preds, "latency_ms": lat, "rss_mib": serve_rss, "startup_s": startup}


# ---------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------
def scores(rows: list[dict[str, Any]], preds: list[dict[str, Any]]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    gold = [r["label"] for r in rows]
    pred = [p["label"] for p in preds]
    labels = sorted(set(gold))
    intent = lambda s: s.split("+", 1)[0]  # noqa: E731
    reports = [(g, p) for g, p in zip(gold, pred, strict=True) if g.startswith("report_issue+")]
    emerg = [p["emergency"] for r, p in zip(rows, preds, strict=True) if r["emergency"] is True]
    return {
        "accuracy": accuracy_score(gold, pred),
        "macro_f1": f1_score(gold, pred, labels=labels, average="macro", zero_division=0),
        "intent_accuracy": accuracy_score([intent(g) for g in gold], [intent(p) for p in pred]),
        "category_accuracy": sum(g == p for g, p in reports) / len(reports) if reports else float("nan"),
        "emergency_recall": (sum(bool(e) for e in emerg) / len(emerg))
        if emerg and all(e is not None for e in emerg)
        else float("nan"),
        "n_emergency": len(emerg),
    }


def fmt(v: float, spec: str) -> str:
    return "n/a" if v != v else format(v, spec)  # NaN check


def table(results: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    cols = list(results)
    s = {k: scores(rows, r["preds"]) for k, r in results.items()}

    def emergency(k: str) -> str:
        if not s[k]["n_emergency"]:
            return "n/a"
        if k == "rasa":  # Rasa has no emergency flag: RasaHttpNlu takes the embedded backend's
            return f"{fmt(s['embedded']['emergency_recall'], '.3f')} (embedded's flag)" if "embedded" in s else "n/a"
        return fmt(s[k]["emergency_recall"], ".3f")

    lines = [
        ("accuracy (intent+category labels)", lambda k: fmt(s[k]["accuracy"], ".3f")),
        ("macro-F1 (intent+category labels)", lambda k: fmt(s[k]["macro_f1"], ".3f")),
        ("intent accuracy", lambda k: fmt(s[k]["intent_accuracy"], ".3f")),
        ("category accuracy (reports)", lambda k: fmt(s[k]["category_accuracy"], ".3f")),
        ("emergency recall", emergency),
        ("parse p50 (ms)", lambda k: fmt(percentile(results[k]["latency_ms"], 50), ".2f")),
        ("parse p99 (ms)", lambda k: fmt(percentile(results[k]["latency_ms"], 99), ".2f")),
        ("training wall time (s)", lambda k: fmt(results[k]["train"]["wall_s"], ".1f")),
        ("training peak RSS (MiB)", lambda k: fmt(results[k]["train"]["peak_rss_mib"], ".0f")),
        ("serving RSS after eval (MiB)", lambda k: fmt(results[k]["rss_mib"], ".0f")),
    ]
    names = {"embedded": "embedded", "rasa": "Rasa 3.6 DIET (HTTP)"}
    out = ["| | " + " | ".join(names.get(c, c) for c in cols) + " |", "|---|" + "---|" * len(cols)]
    out += [f"| {title} | " + " | ".join(f(c) for c in cols) + " |" for title, f in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_embedded-train":
        child_embedded_train(Path(argv[1]), Path(argv[2]))
        return 0
    if argv and argv[0] == "_embedded-eval":
        child_embedded_eval(Path(argv[1]), Path(argv[2]), Path(argv[3]), Path(argv[4]))
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="NLU data folder (default nlu/data)")
    ap.add_argument(
        "--eval",
        choices=("auto", "heldout", "split"),
        default="auto",
        help="auto: the held-out TSV files if there are any, else the split",
    )
    ap.add_argument(
        "--tsv", type=Path, action="append", help="held-out TSV file (repeatable; default: DATA/eval/*.tsv)"
    )
    ap.add_argument("--skip-rasa", action="store_true")
    ap.add_argument("--skip-embedded", action="store_true")
    ap.add_argument("--rasa-config", type=Path, default=REPO / "nlu/config.yml", help="Rasa pipeline to train")
    ap.add_argument("--rasa-venv", type=Path, default=REPO / ".rasa-venv")
    ap.add_argument("--keep", type=Path, help="keep models and logs in this folder")
    ap.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    args = ap.parse_args(argv)
    args.data = args.data.resolve()

    work = Path(tempfile.mkdtemp(prefix="nlu-compare-")) if args.keep is None else args.keep.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        data_dir, rows, how = prepare(args, work)
        print(f"eval: {how}", file=sys.stderr)
        results: dict[str, dict[str, Any]] = {}
        if not args.skip_embedded:
            print("training and evaluating the embedded backend ...", file=sys.stderr)
            results["embedded"] = bench_embedded(data_dir, rows, work)
        if not args.skip_rasa:
            print("training Rasa (a few minutes) and evaluating it over HTTP ...", file=sys.stderr)
            results["rasa"] = bench_rasa(data_dir, rows, work, args.rasa_venv.resolve(), args.rasa_config.resolve())
        print(f"NLU backends on {how}; {os.cpu_count()} CPU cores\n")
        print(table(results, rows))
        if "rasa" in results:
            print(f"\nRasa server start-up (model load) took {results['rasa']['startup_s']:.1f} s.")
        if args.json:
            summary = {
                k: {
                    **scores(rows, r["preds"]),
                    "p50_ms": percentile(r["latency_ms"], 50),
                    "p99_ms": percentile(r["latency_ms"], 99),
                    "train": r["train"],
                    "rss_mib": r["rss_mib"],
                }
                for k, r in results.items()
            }
            nan_to_none = lambda v: None if isinstance(v, float) and v != v else v  # noqa: E731
            clean = {k: {m: nan_to_none(v) for m, v in d.items()} for k, d in summary.items()}
            print(json.dumps(clean, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
