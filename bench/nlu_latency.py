"""Parse latency and memory of the embedded NLU, in fresh processes.

    .venv/bin/python bench/nlu_latency.py [--model DIR] [--rounds 20]

1. trains (or loads from var/nlu-cache) the embedded models once;
2. in a fresh process: imports nlu.embedded, loads the models from the cache, parses the
   held-out messages plus short, long (1,000 chars) and 10,000-char messages ``--rounds``
   times each, one at a time, and reports p50/p99/max per parse (chat messages and long
   ones apart; wall clock and the thread's CPU time, which a busy machine does not inflate)
   and the process RSS (after loading, and the peak) - what the model costs;
3. the same after also importing the service (bot.app and what it pulls in: aiohttp,
   redis, jinja2, the flows engine ...), i.e. the RSS floor of ``gridbot serve``.
--model DIR also loads a bring-your-own category model from ``gridbot nlu train``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "var" / "nlu-cache"

CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
if {service!r}:
    import bot.app  # noqa: F401 - the service's imports
from nlu.embedded import EmbeddedNlu
from nlu.heldout import load_heldout

def rss():
    status = Path("/proc/self/status").read_text()
    field = lambda k: int(status.split(k + ":")[1].split()[0]) / 1024
    return field("VmRSS"), field("VmHWM")

def timed(texts):
    for t in texts:
        nlu.parse_sync(t)
    wall, cpu = [], []
    for _ in range({rounds}):
        for t in texts:
            started, started_cpu = time.perf_counter(), time.thread_time()
            nlu.parse_sync(t)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
    wall.sort()
    cpu.sort()
    pick = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return {{"parses": len(wall), "p50_ms": pick(wall, 0.5), "p99_ms": pick(wall, 0.99), "max_ms": wall[-1],
             "cpu_p50_ms": pick(cpu, 0.5), "cpu_p99_ms": pick(cpu, 0.99)}}

model = {model!r}
nlu = EmbeddedNlu(cache_dir=Path({cache!r}), category_model=Path(model) if model else None)
loaded = rss()
chat = timed([c.text for c in load_heldout()] + ["路灯坏了", "你好", "WG202611220001", "楼下着火了", "", "😀"])
long = timed(["楼上装修太吵了，" * 125, "小区垃圾没人清理，" * 1112])
after = rss()
print(json.dumps({{"chat": chat, "long": long, "rss_loaded_mb": loaded[0], "peak_rss_mb": after[1]}}))
"""


def child(model: str | None, rounds: int, service: bool) -> dict[str, float]:
    code = CHILD.format(repo=str(REPO), cache=str(CACHE), model=model, rounds=rounds, service=service)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a bring-your-own category model directory")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; "
            f"from nlu.embedded import EmbeddedNlu; EmbeddedNlu(cache_dir=Path({str(CACHE)!r}))",
        ],
        check=True,
    )
    model = str(Path(args.model).resolve()) if args.model else None
    print(f"load average before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])} on {os.cpu_count()} CPUs")
    print(
        "| process | messages | parses | p50 ms | p99 ms | max ms | CPU p50 ms | CPU p99 ms | RSS after load MB "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, service in (("nlu only", False), ("service imports + nlu", True)):
        r = child(model, args.rounds, service)
        name = f"{label}{' + BYO model' if model else ''}"
        for kind, what in (("chat", "held-out chat messages"), ("long", "1,000 and 10,000 chars")):
            t = r[kind]
            print(
                f"| {name} | {what} | {t['parses']} | {t['p50_ms']:.3f} | {t['p99_ms']:.3f} | {t['max_ms']:.2f} "
                f"| {t['cpu_p50_ms']:.3f} | {t['cpu_p99_ms']:.3f} | {r['rss_loaded_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
