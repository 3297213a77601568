"""Before/after figures as the small table `steno train` and `steno adapters show` print."""

from __future__ import annotations

import math


def _pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def scores_table(before, after) -> str:
    """WER, CER and term recall before and after, with the change; '-' where not measured."""
    rows = [("", "WER", "CER", "term recall")]
    for label, s in (("before", before), ("after", after)):
        rows.append((label, _pct(s.wer) if s else "-", _pct(s.cer) if s else "-", _pct(s.term_recall) if s else "-"))
    if before and after and math.isfinite(before.wer) and math.isfinite(after.wer):
        def delta(a, b):
            return "-" if a is None or b is None else f"{100 * (b - a):+.1f}"

        rows.append(("change", delta(before.wer, after.wer), delta(before.cer, after.cer),
                     delta(before.term_recall, after.term_recall)))
    return "\n".join(f"{r[0]:8} {r[1]:>8} {r[2]:>8} {r[3]:>12}" for r in rows)
