"""Text for the synthetic training corpus: sentences we write, spoken as a user would say them.

Three domains Steno's users dictate (clinical notes, journalism, general dictation),
generated from our own word lists with enough variety that the LM cannot just learn a
template, plus real prose from Debian packages: `fortunes` (and fortune-anarchism), the
quotations in the GNU Collaborative International Dictionary of English (dict-gcide: Webster
1913's citations of English writers) and WordNet's usage examples (wordnet-base). The prose
is what keeps the LM and the CTC head from memorising a few thousand sentences, and it
gives them the vocabulary of general English. Numbers are written as spoken words, because
that is what a TTS voice says and what the model must write back.

Some drug names are never used here (`HELDOUT_DRUGS`): they are the vocabulary a user
teaches the model with the trainer, so base-model errors on them are real.
"""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

from num2words import num2words

BASE_DRUGS = """amlodipine atorvastatin metformin lisinopril omeprazole simvastatin levothyroxine
amoxicillin paracetamol ibuprofen aspirin warfarin furosemide bisoprolol ramipril sertraline
citalopram gabapentin prednisolone salbutamol insulin morphine codeine tramadol diazepam
lansoprazole clopidogrel doxycycline ciprofloxacin metronidazole naproxen losartan atenolol
propranolol fluoxetine mirtazapine allopurinol tamsulosin finasteride digoxin spironolactone
heparin apixaban rivaroxaban dexamethasone hydrocortisone ondansetron metoclopramide""".split()

HELDOUT_DRUGS = """dapagliflozin empagliflozin sacubitril ticagrelor edoxaban liraglutide semaglutide
tirzepatide rosuvastatin ezetimibe ivabradine ranolazine eplerenone tolvaptan canagliflozin
sitagliptin linagliptin pioglitazone gliclazide glimepiride levetiracetam lamotrigine
topiramate pregabalin duloxetine venlafaxine quetiapine aripiprazole olanzapine risperidone
methotrexate hydroxychloroquine adalimumab etanercept infliximab ustekinumab secukinumab
denosumab alendronate teriparatide""".split()

UNITS = ["milligrams", "micrograms", "units", "millilitres", "grams"]
FREQUENCIES = ["once daily", "twice daily", "three times a day", "at night", "every morning",
               "as required", "every four hours", "once a week", "with meals", "before bed"]
COMPLAINTS = ["chest pain", "shortness of breath", "a persistent cough", "abdominal pain", "headaches",
              "dizziness", "lower back pain", "fatigue", "palpitations", "swelling of both ankles",
              "a rash on the left forearm", "nausea and vomiting", "difficulty sleeping", "joint stiffness"]
FINDINGS = ["the chest was clear", "heart sounds were normal", "the abdomen was soft and non tender",
            "there was mild pitting oedema", "reflexes were brisk", "the throat was inflamed",
            "there was no lymphadenopathy", "pulses were present in both feet", "the wound is healing well"]
BODY = ["left knee", "right shoulder", "lumbar spine", "left ankle", "right hip", "cervical spine", "abdomen",
        "chest", "right wrist", "left eye"]
TESTS = ["full blood count", "renal function", "liver function tests", "an ECG", "a chest X-ray",
         "an ultrasound of the abdomen", "thyroid function", "HbA1c", "a lipid profile", "an MRI scan"]
FIRST = ["James", "Mary", "Ahmed", "Priya", "Chen", "Olga", "Kwame", "Sofia", "Liam", "Aisha", "Mateo",
         "Hannah", "Yuki", "Fatima", "David", "Elena", "Tomasz", "Grace", "Ibrahim", "Nina", "Oliver", "Zara"]
LAST = ["Smith", "Patel", "Okafor", "Nguyen", "Kowalski", "Garcia", "Murphy", "Haddad", "Johansson",
        "Rossi", "Williams", "Khan", "Brown", "Schmidt", "Dubois", "Tanaka", "Mensah", "Novak", "Clarke"]
PLACES = ["London", "Manchester", "Glasgow", "Dublin", "Paris", "Berlin", "Lagos", "Nairobi", "Mumbai",
          "Toronto", "Chicago", "Sydney", "Madrid", "Lisbon", "Warsaw", "Cairo", "Seoul", "Boston", "Leeds"]
ORGS = ["the city council", "the health ministry", "the local hospital trust", "the teachers union",
        "the central bank", "the football club", "the police", "the university", "the energy regulator"]
TOPICS = ["housing costs", "the new bypass", "hospital waiting lists", "the flood defences", "school funding",
          "the water supply", "rail fares", "the local election", "air pollution", "the closure of the library"]
VERBS = ["said", "told reporters", "wrote in a statement", "insisted", "warned", "admitted", "announced"]


def spoken_number(n: int | float, rng: random.Random | None = None) -> str:
    text = num2words(n)
    return text.replace("-", " ").replace(",", "")


def _year(rng: random.Random) -> str:
    return num2words(rng.randint(1950, 2030), to="year").replace("-", " ").replace(",", "")


def clinical(rng: random.Random, drugs: list[str]) -> str:
    d = rng.choice(drugs)
    dose = rng.choice([1, 2, 2.5, 5, 10, 20, 25, 40, 50, 75, 80, 100, 150, 200, 250, 400, 500])
    name = f"{rng.choice(['Mr', 'Mrs', 'Ms', 'Doctor'])} {rng.choice(LAST)}"
    age = spoken_number(rng.randint(18, 95))
    options = [
        lambda: f"Start {d} {spoken_number(dose)} {rng.choice(UNITS)} {rng.choice(FREQUENCIES)}.",
        lambda: f"{name} is a {age} year old who presents with {rng.choice(COMPLAINTS)}.",
        lambda: f"On examination {rng.choice(FINDINGS)} and {rng.choice(FINDINGS)}.",
        lambda: f"Please increase the {d} to {spoken_number(dose)} {rng.choice(UNITS)} and review in "
                f"{spoken_number(rng.randint(2, 12))} weeks.",
        lambda: f"She has been taking {d} for {spoken_number(rng.randint(2, 20))} years without side effects.",
        lambda: f"Blood pressure was {spoken_number(rng.randint(95, 190))} over {spoken_number(rng.randint(55, 110))} "
                f"and the pulse {spoken_number(rng.randint(48, 130))}.",
        lambda: f"We will arrange {rng.choice(TESTS)} and {rng.choice(TESTS)}.",
        lambda: f"Pain in the {rng.choice(BODY)} for {spoken_number(rng.randint(2, 30))} days, worse at night.",
        lambda: f"Stop the {d} and switch to {rng.choice(drugs)} {spoken_number(dose)} {rng.choice(UNITS)}.",
        lambda: f"Dear {name}, thank you for seeing this {age} year old with {rng.choice(COMPLAINTS)}.",
        lambda: f"Allergic to {rng.choice(drugs)}, which caused a rash.",
        lambda: f"Temperature {spoken_number(rng.randint(35, 40))} point {spoken_number(rng.randint(0, 9))} degrees.",
    ]
    return rng.choice(options)()


def journalism(rng: random.Random) -> str:
    person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    place = rng.choice(PLACES)
    options = [
        lambda: f"{person}, a spokesperson for {rng.choice(ORGS)}, {rng.choice(VERBS)} that {rng.choice(TOPICS)} "
                f"would be reviewed.",
        lambda: f"\"We cannot wait any longer,\" {person} {rng.choice(VERBS)} in {place}.",
        lambda: f"More than {spoken_number(rng.randint(2, 900))} people gathered in {place} on "
                f"{rng.choice(['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'])}.",
        lambda: f"Prices rose by {spoken_number(rng.randint(1, 40))} percent in {_year(rng)}.",
        lambda: f"The report on {rng.choice(TOPICS)} was published by {rng.choice(ORGS)} in {place}.",
        lambda: f"{person} grew up in {place} and moved to {rng.choice(PLACES)} in {_year(rng)}.",
        lambda: f"Asked about {rng.choice(TOPICS)}, {person} declined to comment.",
        lambda: f"The vote was {spoken_number(rng.randint(10, 400))} to {spoken_number(rng.randint(10, 400))}.",
        lambda: f"I spoke to {person} at the station in {place} about {rng.choice(TOPICS)}.",
    ]
    return rng.choice(options)()


GENERAL = [
    "Remind me to call the office tomorrow morning.", "Please send the minutes to everyone before Friday.",
    "The meeting has been moved to half past three.", "Can you book a table for four people on Saturday?",
    "I will be working from home on Thursday.", "Let us review the budget at the end of the month.",
    "Thank you for your letter of the twelfth of March.", "The parcel should arrive within two working days.",
    "Add milk, bread and coffee to the shopping list.", "Please find the signed contract attached.",
]


def general(rng: random.Random) -> str:
    s = rng.choice(GENERAL)
    if rng.random() < 0.5:
        s = f"{rng.choice(FIRST)}, {s[0].lower()}{s[1:]}"
    return s


_FORTUNE_DIRS = [Path("/usr/share/games/fortunes"), Path("/usr/share/fortunes")]
_OK = re.compile(r"^[A-Za-z][A-Za-z ,.'?!;:\"-]*$")


def _prose_ok(s: str) -> bool:
    words = s.split()
    return 4 <= len(words) <= 28 and bool(_OK.match(s)) and not s.isupper()


def fortune_sentences(limit: int | None = None) -> list[str]:
    """Plain sentences from Debian's fortunes files: varied, real-looking English prose."""
    out: list[str] = []
    for d in _FORTUNE_DIRS:
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix or f.is_dir() or f.name in {"art", "ascii-art"}:
                continue
            text = f.read_text(encoding="latin-1", errors="ignore")
            for entry in text.split("\n%\n"):
                if "\t" in entry or "--" in entry:
                    continue  # quotes with attributions, poems and tables
                flat = " ".join(entry.split())
                out += [s for s in re.split(r"(?<=[.!?])\s+", flat) if _prose_ok(s)]
    out = sorted(set(out))
    return out[:limit] if limit else out


_GCIDE = Path("/usr/share/dictd/gcide.dict.dz")  # dictzip is gzip-compatible
_WORDNET = Path("/usr/share/wordnet")
# Quotations from these authors are left out: the real-speech dev set reads Austen, and
# jfk.wav is Kennedy.
_EXCLUDED_AUTHORS = ("austen", "kennedy")


def gcide_quotations(limit: int | None = None) -> list[str]:
    """Citations in GCIDE entries: indented blocks that end with `--Author.`; 1600-1900 prose."""
    if not _GCIDE.is_file():
        return []
    text = gzip.open(_GCIDE, "rt", encoding="utf-8", errors="ignore").read()
    out: set[str] = set()
    block: list[str] = []
    for line in text.splitlines():
        if line.startswith("          ") and not line.strip().startswith("["):
            block.append(line.strip())
            continue
        if block:
            quote = " ".join(block)
            block = []
            quote, _, author = quote.partition("--")
            if any(a in author.lower() for a in _EXCLUDED_AUTHORS):
                continue
            quote = " ".join(quote.split())
            if quote[:1].isupper() and _prose_ok(quote):
                out.add(quote)
    found = sorted(out)
    return found[:limit] if limit else found


def wordnet_examples(limit: int | None = None) -> list[str]:
    """WordNet's usage examples ("she was able to program her computer"): short, everyday."""
    out: set[str] = set()
    for part in ("noun", "verb", "adj", "adv"):
        f = _WORDNET / f"data.{part}"
        if not f.is_file():
            continue
        for line in f.read_text(encoding="latin-1").splitlines():
            if "|" not in line:
                continue
            for ex in re.findall(r'"([^"]+)"', line.split("|", 1)[1]):
                ex = ex.strip()
                if ex and ex[0].islower():
                    ex = ex[0].upper() + ex[1:]
                if ex and ex[-1] not in ".?!":
                    ex += "."
                if _prose_ok(ex):
                    out.add(ex)
    found = sorted(out)
    return found[:limit] if limit else found


def prose_sentences() -> list[str]:
    """Every prose sentence the installed Debian text packages give, none with a held-out drug."""
    held = tuple(d.lower() for d in HELDOUT_DRUGS)
    pool = set(fortune_sentences()) | set(gcide_quotations()) | set(wordnet_examples())
    return sorted(s for s in pool if not any(d in s.lower() for d in held))


def ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.sub(r"[^a-z' ]", " ", text.lower()).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def build_sentences(n: int, seed: int = 0, drugs: list[str] | None = None,
                    mix: tuple[float, float, float, float] = (0.2, 0.15, 0.05, 0.6),
                    exclude: list[str] | None = None, avoid: set[str] | None = None) -> list[str]:
    """n distinct sentences: clinical, journalism, general dictation, prose (Debian texts).

    A sentence that shares five words in a row with any `exclude` text (evaluation and
    rehearsal sentences) is never used; nor is one in `avoid` (another corpus's training
    sentences, so a second corpus adds new text).
    """
    rng = random.Random(seed)
    drugs = drugs or BASE_DRUGS
    banned = set().union(*(ngrams(t) for t in exclude)) if exclude else set()
    prose = prose_sentences()
    rng.shuffle(prose)
    seen: set[str] = set(avoid or ())
    out: list[str] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        r = rng.random()
        if r < mix[0]:
            s = clinical(rng, drugs)
        elif r < mix[0] + mix[1]:
            s = journalism(rng)
        elif r < mix[0] + mix[1] + mix[2]:
            s = general(rng)
        elif prose:
            s = prose.pop()
        else:
            s = clinical(rng, drugs)
        if s not in seen and not (banned and ngrams(s) & banned):
            seen.add(s)
            out.append(s)
    return out
