"""The teacher: Whisper base hears each real training clip, and per clip a rule decides what is trained on.

    .venv/bin/python -m recipes.teacher hear --corpus data/real_corpus/native data/real_corpus/other \
        --sources speechocean762 accent_archive --out data/teacher/heard.tsv [--limit 400]
    .venv/bin/python -m recipes.teacher decide --heard data/teacher/heard.tsv --out data/teacher/decisions.tsv

Why: the sources' texts are prompts, not transcripts. speechocean762's children and learners do
not always say the prompt, and the accent archive's speakers skip or repeat words of their one
paragraph; a head trained on a prompt the speaker did not say learns to hear words that are not
there (the worst bug for a dictation app). Whisper base (Steno's own, 8% WER on the real choice
set) is a second opinion. `hear` reads the training clips of recipes.real_corpus's folders and writes `audio<TAB>prompt<TAB>heard` and resumes where it
stopped; `decide` keeps the prompt where the two agree (within AGREE word error rate), takes the
clip where they disagree. Where they disagree a little (up to UNSURE), `--follow-teacher` takes
the teacher's words (the reader deviated); by default the clip is dropped too, because on the
non-native sources the teacher's differing words were mostly its own mishearings ("six wounds
are fresh no peace" for the accent paragraph's "six spoons of fresh snow peas", "commands" for
"comments"; docs/real_speech.md). `recipes.real_corpus --teacher decisions.tsv` trains on the
result. Clips without a prompt take the teacher's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

AGREE = 0.15   # prompt vs teacher WER at or below which the prompt is trusted
UNSURE = 0.5   # above this both may be wrong: the clip is dropped


@dataclass
class Decision:
    text: str | None   # what is trained on; None: the clip is dropped
    rule: str  # "prompt", "teacher", "dropped: deviates", "dropped: disagree", "dropped: silent", "teacher: no prompt"


def decide(prompt: str, heard: str, agree: float = AGREE, unsure: float = UNSURE,
           follow_teacher: bool = False) -> Decision:
    """What to train on, given the source's prompt and the teacher's text (both normalised)."""
    from engine.text.metrics import error_rates

    if not heard.strip():
        return Decision(None, "dropped: silent")
    if not prompt.strip():
        return Decision(heard, "teacher: no prompt")
    wer = error_rates([prompt], [heard]).wer
    if wer <= agree:
        return Decision(prompt, "prompt")
    if wer <= unsure:
        return Decision(heard, "teacher") if follow_teacher else Decision(None, "dropped: deviates")
    return Decision(None, "dropped: disagree")


def hear(rows: list[tuple[Path, str]], out: Path, model: str = "whisper-base", threads: int = 1, progress=None) -> int:
    """Append `audio<TAB>prompt<TAB>heard` for every row not yet in `out`; returns clips heard now."""
    import torch

    import engine.runtime
    from engine.text.metrics import normalize
    from engine.transcriber import Transcriber

    done = {line.split("\t")[0] for line in out.read_text(encoding="utf-8").splitlines()} if out.is_file() else set()
    todo = [(a, t) for a, t in rows if str(a) not in done]
    if not todo:
        return 0
    torch.set_num_threads(threads)
    engine.runtime.cpu_threads = lambda: threads
    teacher = Transcriber(model, device="cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:  # one line per clip, flushed: a killed run resumes
        for i, (audio, prompt) in enumerate(todo):
            heard = normalize(teacher.transcribe(audio).text)
            f.write(f"{audio}\t{prompt}\t{heard}\n")
            f.flush()
            if progress:
                progress(i + 1, len(todo))
    return len(todo)


def decide_all(heard: Path, out: Path, agree: float = AGREE, unsure: float = UNSURE,
               follow_teacher: bool = False) -> dict[str, int]:
    """decisions.tsv (`audio<TAB>text or empty<TAB>rule`) from a heard.tsv; returns clips per rule."""
    from engine.files import atomic_write_text

    counts: dict[str, int] = {}
    lines = []
    for line in heard.read_text(encoding="utf-8").splitlines():
        audio, prompt, text = (line.split("\t") + ["", ""])[:3]
        d = decide(prompt, text, agree, unsure, follow_teacher)
        counts[d.rule] = counts.get(d.rule, 0) + 1
        lines.append(f"{audio}\t{d.text or ''}\t{d.rule}\n")
    atomic_write_text(out, "".join(lines))
    return counts


def read_decisions(path: Path) -> dict[str, str | None]:
    """audio path -> the text to train on, or None for a dropped clip."""
    decisions = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        audio, text, _ = line.split("\t")
        decisions[audio] = text or None
    return decisions


def sample(rows: list, limit: int) -> list:
    """About `limit` rows evenly spaced over `rows` (all when limit is 0): every speaker has a share."""
    if not limit or limit >= len(rows):
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def main() -> None:
    import argparse
    import sys

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hear", help="the teacher transcribes the training clips of some sources")
    h.add_argument("--corpus", type=Path, nargs="+", default=[Path("data/real_corpus/native"), Path("data/real_corpus/other")],
                   help="recipes.real_corpus folders whose train.tsv the teacher hears")
    h.add_argument("--sources", nargs="+", default=["speechocean762", "accent_archive"])
    h.add_argument("--out", type=Path, default=Path("data/teacher/heard.tsv"))
    h.add_argument("--limit", type=int, default=0, help="about N evenly spaced clips per source (0: all)")
    h.add_argument("--model", default="whisper-base")
    h.add_argument("--threads", type=int, default=1)
    d = sub.add_parser("decide", help="per clip: prompt, teacher's text, or dropped")
    d.add_argument("--heard", type=Path, default=Path("data/teacher/heard.tsv"))
    d.add_argument("--out", type=Path, default=Path("data/teacher/decisions.tsv"))
    d.add_argument("--agree", type=float, default=AGREE)
    d.add_argument("--unsure", type=float, default=UNSURE)
    d.add_argument("--follow-teacher", action="store_true",
                   help="train on the teacher's words where it differs a little from the prompt (default: drop the clip)")
    args = p.parse_args()
    if args.command == "decide":
        counts = decide_all(args.heard, args.out, args.agree, args.unsure, args.follow_teacher)
        print(", ".join(f"{rule}: {n}" for rule, n in sorted(counts.items())) + f" -> {args.out}")
        return
    from engine.logs import quiet_libraries
    from recipes.features import read_split

    quiet_libraries()
    clips = [row for folder in args.corpus for row in read_split(folder, "train")]
    rows = []
    for source in args.sources:  # an imported clip lives in SOURCE/wav/
        rows += sample([(a, t) for a, t in clips if a.parent.parent.name == source], args.limit)

    def progress(done, total):
        print(f"\rheard {done}/{total}", end="", file=sys.stderr, flush=True)

    n = hear(rows, args.out, args.model, args.threads, progress)
    print(f"\n{n} clips heard into {args.out}")


if __name__ == "__main__":
    main()
