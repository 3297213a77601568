"""Measure the trainer's targets (issue 3) on a real base model.

    # 1. a synthetic clinical set: 40 drug names, 200 training sentences spoken by some
    #    espeak-ng voices, 60 *new* sentences with the same drugs spoken by other voices,
    #    and general (non-clinical) sentences by those other voices
    python -m bench.adaptation make-data --out /tmp/clinical
    # 2. before/after term recall on the new sentences, WER on general speech (plus the
    #    LibriVox clips of Debian's pocketsphinx-testdata when installed), training time
    python -m bench.adaptation run --base whisper-tiny.en --data /tmp/clinical

Targets: term recall on the new sentences at least doubles; general WER rises by less
than 10% relative; 200 sentences train in under 20 minutes on the 2-core CPU; text-only
adaptation from the word list raises term recall (bridge models; a Whisper-family model
learns from recordings only).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

DRUGS = """amlodipine metoprolol lisinopril atorvastatin apixaban rivaroxaban dabigatran edoxaban clopidogrel
ticagrelor bisoprolol ramipril candesartan spironolactone bumetanide empagliflozin dapagliflozin sitagliptin
gliclazide levothyroxine lansoprazole pantoprazole sertraline citalopram mirtazapine venlafaxine quetiapine
olanzapine haloperidol pregabalin oxycodone ondansetron metoclopramide prednisolone hydrocortisone doxycycline
clarithromycin nitrofurantoin allopurinol tamsulosin""".split()

# Written the way Whisper writes them (digits, sentence case, a full stop), so that the
# adaptation teaches words, not a new style; espeak-ng reads "2.5" as "two point five".
DOSES = ["2.5", "5", "10", "20", "40", "80", "100"]
TIMES = ["once a day", "twice a day", "at night", "every morning", "three times a day"]
TRAIN_TEMPLATES = [
    "start {d} {n} milligrams {t}",
    "the patient takes {d} for her heart",
    "please stop the {d} and review in two weeks",
    "increase {d} to {n} milligrams",
    "{d} was switched to {e} because of side effects",
    "she had a reaction to {d} last year",
    "continue {d} and {e} at the same doses",
    "he is on {d} {t}",
    "reduce the {d} dose to {n} milligrams",
    "we discussed {d} with the pharmacist today",
    "check kidney function before starting {d}",
    "prescribe {d} {n} milligrams {t}",
]
TEST_TEMPLATES = [
    "her {d} was held before the operation",
    "he forgot to take his {d} this week",
    "the {d} seems to be working well",
    "she would like to come off {d}",
    "{d} and {e} should not be taken together",
    "restart {d} when she is eating again",
]
GENERAL = """The meeting has been moved to Thursday afternoon.
She walked along the river before the rain started.
Our train was delayed by nearly an hour.
The council will vote on the new budget next month.
He bought fresh bread and cheese at the market.
The children were playing football in the park.
We need to book a table for the whole family.
The museum opens early in the morning.
They painted the kitchen a pale shade of blue.
The weather should improve by the weekend.
Can you send me the report by Friday?
The library is closed on public holidays.
The band played until well after midnight.
Please turn off the lights when you leave.
My sister is moving to a flat near the station.
The interview lasted about half an hour.
A new bridge is being built across the river.
The shop on the corner sells good coffee.
He has been working on the same novel for years.
The election results will be announced tonight.
The car park behind the station is free on Sundays.
She opened the window to let in some fresh air.
The football season starts again in August.
We have run out of washing up liquid.
He was born in a small town by the sea.
The news conference has been postponed until tomorrow.
I would rather stay in and watch a film.
The gallery is showing paintings by local artists.
The builders arrived early and started drilling.
Please leave your coats in the cloakroom.
Her new book will be published in the autumn.
The path through the forest was covered in leaves.
They sold their house and moved abroad.
The phone rang just as I was leaving.
The mayor opened the new swimming pool.
My grandfather used to work on the railways.
We could see the lights of the city from the hill.
The radio said there would be frost tonight.
The queue for the museum went around the block.
He ordered the fish and a green salad.
Our internet connection has been slow all week.
The trial is expected to last several weeks.
She ran to catch the bus but missed it.
The roof needs repairing before the winter.
I have left the keys with the neighbours.
The ship sailed out of the harbour at dawn.
We are meeting at the cafe near the cathedral.
The garden centre is having a sale this weekend.
He broke his arm playing rugby at school.
The streets were empty early on Sunday morning.
The government has promised to build more homes.
She always takes the stairs instead of the lift.
The shop assistant helped me find a new jacket.
Thunder rolled across the valley all afternoon.
I need to charge my phone before we go out.
The festival attracts visitors from all over the country.
He fell asleep on the sofa watching the news.
The cleaners come in on Tuesday and Friday.
They hope to reopen the old railway line.
The candidates will debate on television next week.""".splitlines()  # 60 sentences, 502 words: one word is 0.2 WER points per voice
TRAIN_VOICES = [("en-us", 0), ("en-gb", 0), ("en-gb-x-rp", 10), ("en-gb-scotland", 0), ("en-029", 0),
                ("en-us+m3", 0), ("en-gb+f2", 20)]
TEST_VOICES = [("en-us-nyc", 0), ("en-gb-x-gbclan", 0), ("mb-us1", 0), ("mb-us2", 0), ("en-us+f4", 30)]
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def speak(text: str, path: Path, voice: str, pitch: int, rate: int) -> bool:
    r = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(50 + pitch), "-w", str(path), text],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0 and path.is_file() and path.stat().st_size > 1000


def usable(voices):
    """The voices this machine can speak with (mbrola voices need the mbrola package)."""
    ok = []
    for v in voices:
        r = subprocess.run(["espeak-ng", "-v", v[0], "--stdout", "test"], capture_output=True)
        if r.returncode == 0 and len(r.stdout) > 1000 and b"rror" not in r.stderr:
            ok.append(v)
    return ok


def sentences(templates, n: int, rng: random.Random) -> list[str]:
    out, seen = [], set()
    per_drug = [DRUGS[i % len(DRUGS)] for i in range(n)]  # every drug about equally often
    rng.shuffle(per_drug)
    for d in per_drug:
        for _ in range(50):
            s = rng.choice(templates).format(d=d, e=rng.choice([x for x in DRUGS if x != d]),
                                             n=rng.choice(DOSES), t=rng.choice(TIMES))
            s = s[0].upper() + s[1:] + "."
            if s not in seen:
                break
        seen.add(s)
        out.append(s)
    return out


def write_set(folder: Path, texts: list[str], voices, rng: random.Random) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        voice, pitch = voices[i % len(voices)]
        if speak(text, folder / f"{i:04d}.wav", voice, pitch + rng.randint(-10, 10), rng.randint(140, 190)):
            (folder / f"{i:04d}.txt").write_text(text + "\n")


def make_data(args) -> None:
    if shutil.which("espeak-ng") is None:
        sys.exit("bench: espeak-ng is not installed")
    rng = random.Random(args.seed)
    out = Path(args.out)
    train_voices, test_voices = usable(TRAIN_VOICES), usable(TEST_VOICES)
    write_set(out / "train", sentences(TRAIN_TEMPLATES, args.train, rng), train_voices, rng)
    write_set(out / "test", sentences(TEST_TEMPLATES, args.test, rng), test_voices, rng)
    write_set(out / "general", GENERAL, test_voices, rng)
    (out / "words.txt").write_text("\n".join(DRUGS) + "\n")
    print(f"{out}: train {len(list((out / 'train').glob('*.wav')))} clips ({len(train_voices)} voices), "
          f"test {len(list((out / 'test').glob('*.wav')))} and general {len(list((out / 'general').glob('*.wav')))} "
          f"clips ({len(test_voices)} other voices), {len(DRUGS)} drugs in words.txt")


def librivox_pairs():
    from trainer.api import Pair

    if not (LIBRIVOX / "transcription").is_file():
        return []
    pairs = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, name = line.rpartition("(")
        text = text.replace("<s>", "").replace("</s>", "").strip()
        wav = LIBRIVOX / f"{name.strip(') ')}.wav"
        if wav.is_file():
            pairs.append(Pair(wav, text))
    return pairs


def measure(transcriber, pairs, terms) -> dict:
    from engine.text.metrics import error_rates, term_recall

    if not pairs:
        return {}
    refs = [p.text for p in pairs]
    hyps = [transcriber.transcribe(p.audio).text for p in pairs]
    rates = error_rates(refs, hyps)
    return {"wer": rates.wer, "cer": rates.cer, "term_recall": term_recall(terms, refs, hyps), "n": len(pairs),
            "rows": [{"reference": r, "hypothesis": h} for r, h in zip(refs, hyps)]}


def run(args) -> None:
    from engine.models.config import ModelConfig
    from engine.models.registry import resolve_model
    from engine.transcriber import Transcriber
    from trainer.api import TrainSettings, collect_data, train_adapter

    data = Path(args.data)
    base = resolve_model(args.base)
    family = ModelConfig.load(base).family
    words = data / "words.txt"
    terms = words.read_text().split()
    test = collect_data([data / "test"], eval_fraction=0).pairs
    general = collect_data([data / "general"], eval_fraction=0).pairs
    real = librivox_pairs()
    tr = Transcriber(base, device=args.device)
    print(f"base {base} ({family}) on {tr.device_text}", file=sys.stderr)
    if args.text_only:
        return text_only_run(args, base, tr, terms, test, general, words)
    rows = {"before": {"terms": measure(tr, test, terms), "general": measure(tr, general, terms),
                       "librivox": measure(tr, real, terms)}}

    report = collect_data([data / "train"], word_list=words, seed=args.seed)
    report.texts = []  # speech adaptation alone here; the word list is only the terms to score
    settings = TrainSettings(rank=args.rank, alpha=2 * args.rank, epochs=args.epochs, learning_rate=args.lr,
                             batch_size=args.batch, device=args.device, evaluate=False, seed=args.seed,
                             cross_attention=args.cross_attention, train_mlp=args.mlp, anchor=args.anchor,
                             rehearsal=args.rehearsal)
    out = Path(args.out or (data / f"adapter-{base.name}"))
    started = time.perf_counter()
    result = train_adapter(base, report, out, settings, resume=False,
                           callback=lambda p: print(f"\r{p.message:70}", end="", file=sys.stderr))
    minutes = (time.perf_counter() - started) / 60
    print(file=sys.stderr)
    tr.set_adapter(out)
    rows["after"] = {"terms": measure(tr, test, terms), "general": measure(tr, general, terms),
                     "librivox": measure(tr, real, terms)}

    if family == "bridge":
        text_only = collect_data(word_list=words, seed=args.seed)
        text_out = out.with_name(out.name + "-words")
        train_adapter(base, text_only, text_out, TrainSettings(**{**settings.__dict__, "epochs": args.text_epochs}),
                      resume=False)
        tr.set_adapter(text_out)
        rows["text only"] = {"terms": measure(tr, test, terms)}

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    print(f"\nbase model {base.name}; {len(report.pairs)} training clips ({report.audio_seconds / 60:.1f} min), "
          f"{result.steps} steps in {minutes:.1f} min on {args.device}"
          + (" (stopped early)" if result.stopped_early else ""))
    print(f"{'':10} {'term recall (new sentences)':>28} {'WER (new sentences)':>20} {'WER general':>12} "
          f"{'WER LibriVox':>13}")
    for name, r in rows.items():
        print(f"{name:10} {pct(r['terms'].get('term_recall')):>28} {pct(r['terms'].get('wer')):>20} "
              f"{pct(r.get('general', {}).get('wer')):>12} {pct(r.get('librivox', {}).get('wer')):>13}")
    b, a = rows["before"], rows["after"]
    tb, ta = b["terms"]["term_recall"] or 0.0, a["terms"]["term_recall"] or 0.0
    gain = f"x{ta / tb:.2f}" if tb else f"{pct(tb)} -> {pct(ta)}"
    rise = a["general"]["wer"] / max(b["general"]["wer"], 1e-9) - 1
    print(f"\nterm recall {gain} (target >= x2); general WER {100 * rise:+.1f}% relative (target < +10%); "
          f"training {minutes:.1f} min (target < 20 min for 200 sentences)")
    if args.json:
        Path(args.json).write_text(json.dumps({"base": str(base), "family": family, "minutes": minutes,
                                               "steps": result.steps, "rows": rows}, indent=2))


def text_only_run(args, base, tr, terms, test, general, words) -> None:
    """Only the word list, as LM text (bridge models): term recall and WER before and after."""
    from trainer.api import TrainSettings, collect_data, train_adapter

    before = {"terms": measure(tr, test, terms), "general": measure(tr, general, terms)}
    out = Path(args.out or (Path(args.data) / f"adapter-{base.name}-words"))
    settings = TrainSettings(rank=args.rank, alpha=2 * args.rank, epochs=args.text_epochs, learning_rate=args.lr,
                             batch_size=args.batch, device=args.device, evaluate=False, seed=args.seed,
                             train_mlp=args.mlp)
    started = time.perf_counter()
    train_adapter(base, collect_data(word_list=words, seed=args.seed), out, settings, resume=False)
    minutes = (time.perf_counter() - started) / 60
    tr.set_adapter(out)
    after = {"terms": measure(tr, test, terms), "general": measure(tr, general, terms)}
    print(f"\nbase model {base.name}; text-only adaptation on {len(terms)} terms, {minutes:.1f} min")
    print("| | term recall (new sentences) | WER (new sentences) | WER general |\n|---|---|---|---|")
    for name, r in (("before", before), ("after (word list only)", after)):
        print(f"| {name} | {100 * r['terms']['term_recall']:.1f}% | {100 * r['terms']['wer']:.1f}% | "
              f"{100 * r['general']['wer']:.1f}% |")


def main() -> None:
    from trainer.api import TrainSettings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-data")
    m.add_argument("--out", required=True)
    m.add_argument("--train", type=int, default=200)
    m.add_argument("--test", type=int, default=60)
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run")
    r.add_argument("--base", required=True, help="model folder or installed name")
    r.add_argument("--data", required=True, help="the folder make-data wrote")
    r.add_argument("--out", help="adapter folder (default: DATA/adapter-BASE)")
    # defaults: the recipe measured best on whisper-tiny.en (docs/trainer.md)
    r.add_argument("--epochs", type=int, default=6)
    r.add_argument("--text-epochs", type=int, default=10)
    r.add_argument("--rank", type=int, default=16)
    r.add_argument("--lr", type=float, default=2e-3)
    r.add_argument("--batch", type=int, default=4)
    r.add_argument("--mlp", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--cross-attention", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--anchor", type=float, default=1.0)
    r.add_argument("--rehearsal", type=int, default=TrainSettings.rehearsal,
                   help="everyday sentences spoken by espeak-ng and trained on beside the data (0 = off)")
    r.add_argument("--device", default="auto")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json", help="also write the figures here")
    r.add_argument("--text-only", action="store_true", help="only the word list as text (bridge models)")
    args = p.parse_args()
    make_data(args) if args.cmd == "make-data" else run(args)


if __name__ == "__main__":
    main()
