"""Confusion matrix as a PNG (matplotlib, Agg). Imported only by ``gridbot nlu eval --plot``.

Chinese labels need a CJK font. If the machine has one (e.g. Debian's fonts-noto-cjk or
fonts-wqy-microhei), the axes show the labels; otherwise they show numbers and a key
below the plot lists "number = label" with every non-ASCII label written as its
Unicode escapes, so the picture never shows empty boxes.
"""

from __future__ import annotations

import re
from pathlib import Path

from nlu.byo import EvalReport

_CJK_FILE = re.compile(r"wqy|notosanscjk|notoserifcjk|sourcehan|simhei|msyh|droidsansfallback|uming|ukai", re.I)


def cjk_font() -> str | None:
    """The family name of an installed CJK font, or None. Looks at the font files themselves,
    so a font installed after matplotlib built its cache is found too."""
    from matplotlib import font_manager

    for path in sorted(font_manager.findSystemFonts(), key=lambda p: ("bold" in p.lower(), p)):
        if _CJK_FILE.search(Path(path).name):
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


def plot_confusion(report: EvalReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    font = cjk_font()
    labels = list(report.labels)
    n = len(labels)
    ascii_only = all(label.isascii() for label in labels)
    ticks = labels if font or ascii_only else [str(i) for i in range(n)]
    matrix = np.array(report.confusion, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)

    size = max(5.0, 0.55 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size, size + (0.25 * n if ticks is not labels else 0)))
    if font:
        plt.rcParams["font.sans-serif"] = [font, "DejaVu Sans"]
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(n), ticks, rotation=45 if ticks is labels else 0, ha="right" if ticks is labels else "center")
    ax.set_yticks(range(n), ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {report.accuracy:.3f}   macro-F1 {report.macro_f1:.3f}   n={report.messages}")
    if ticks is not labels:
        key = "   ".join(f"{i} = {label.encode('unicode_escape').decode('ascii')}" for i, label in enumerate(labels))
        fig.text(0.02, 0.01, key, fontsize=7, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.06 if ticks is not labels else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
