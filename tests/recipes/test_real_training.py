"""Real speech into training: the corpus folders (recipes.real_corpus) and the teacher's per-clip
rule (recipes.teacher), on tiny imported sources written here."""

import json
from pathlib import Path

from recipes import real_corpus, real_speech
from recipes.teacher import Decision, decide, decide_all, read_decisions, sample


def imported(root: Path, source: str, rows: list[tuple[str, str, str, bool]]) -> None:
    folder = root / source
    folder.mkdir(parents=True)
    (folder / "clips.tsv").write_text("".join(f"wav/{u}.wav\t{t}\t{s}\t{'native' if n else 'non-native'}\n"
                                              for u, t, s, n in rows), encoding="utf-8")


def sources(tmp_path, monkeypatch):
    held = tmp_path / "held.json"
    held.write_text(json.dumps({"ljspeech": {"speakers": [], "clips": ["LJ2"]},
                                "accent_archive": {"speakers": ["english9"]},
                                "fsdd": {"speakers": ["theo"]}}))
    monkeypatch.setattr(real_speech, "HELD_OUT_FILE", held)
    real = tmp_path / "real"
    imported(real, "ljspeech", [("LJ1", "one read line", "LJ", True), ("LJ2", "a held out line", "LJ", True)])
    imported(real, "accent_archive", [(f"english{i}", "please call stella", f"english{i}", True) for i in range(10)]
             + [(f"arabic{i}", "please call stella", f"arabic{i}", False) for i in range(10)])
    imported(real, "fsdd", [(f"{d}_{s}_{n}", str(d), s, s == "jackson") for s in ("jackson", "theo", "george")
                            for n in range(3) for d in range(10)])
    return real


def test_corpora_hold_out_the_choice_set_cap_the_paragraph_and_split_native(tmp_path, monkeypatch):
    real = sources(tmp_path, monkeypatch)
    choice = tmp_path / "choice"
    choice.mkdir()
    (choice / "ljspeech.tsv").write_text("".join(f"/c/LJ{i}.wav\tline {i}\tLJ\tnative\n" for i in range(30)))
    counts = real_corpus.write_corpora(real, tmp_path / "out", choice, accent_cap=6, fsdd_per_speaker=12)
    native = [line.split("\t") for line in (tmp_path / "out/native/train.tsv").read_text().splitlines()]
    other = [line.split("\t") for line in (tmp_path / "out/other/train.tsv").read_text().splitlines()]
    names = [Path(a).stem for a, _ in native + other]
    assert "LJ2" not in names and "english9" not in names and not any("_theo_" in n for n in names)
    accent = [n for n in names if n.startswith(("english", "arabic"))]
    assert len(accent) == 6 and sum(n.startswith("english") for n in accent) == 4
    jackson = [n for n in names if "_jackson_" in n]
    assert len(jackson) == 12 and {n.split("_")[0] for n in jackson} == {str(d) for d in range(10)}
    assert all(Path(a).stem.startswith(("LJ", "english", "1", "0", "2", "3", "4", "5", "6", "7", "8", "9"))
               and "george" not in a for a, _ in native)
    assert any("george" in a for a, _ in other) and all(Path(a).is_absolute() for a, _ in native + other)
    assert counts["native test"] == 15 and counts["other test"] == 0
    assert (tmp_path / "out/other/test.tsv").read_text() == ""


def test_the_teacher_keeps_agreeing_prompts_follows_deviating_readers_and_drops_the_unsure():
    prompt = "we call it bear and the cat is small"
    assert decide(prompt, prompt) == Decision(prompt, "prompt")
    assert decide(prompt, "we call it bear and the cat is tall").rule == "prompt"  # 1 of 9 words
    deviated = "we call it a bear and cat is so small"
    assert decide(prompt, deviated) == Decision(None, "dropped: deviates")
    assert decide(prompt, deviated, follow_teacher=True) == Decision(deviated, "teacher")
    assert decide(prompt, "thank you").text is None and decide(prompt, "thank you").rule == "dropped: disagree"
    assert decide(prompt, "").rule == "dropped: silent"
    assert decide("", "some words").text == "some words"


def test_decisions_replace_or_drop_training_texts(tmp_path, monkeypatch):
    real = sources(tmp_path, monkeypatch)
    lj = str(real / "ljspeech/wav/LJ1.wav")
    english = str(real / "accent_archive/wav/english0.wav")
    heard = tmp_path / "heard.tsv"
    heard.write_text(f"{lj}\tone read line\tone red line and more words\n{english}\tplease call stella\tplease call stella\n")
    counts = decide_all(heard, tmp_path / "decisions.tsv")
    assert counts == {"dropped: disagree": 1, "prompt": 1}
    rows = real_corpus.training_rows(real, accent_cap=20, teacher=read_decisions(tmp_path / "decisions.tsv"))
    texts = {str(a): t for a, t, _, _ in rows}
    assert lj not in texts and texts[english] == "please call stella" and len(rows) == 19 + 60  # accent 20 less its held-out speaker, FSDD less theo


def test_a_sample_is_spread_over_all_rows():
    rows = list(range(100))
    assert sample(rows, 0) == rows and sample(rows, 200) == rows
    assert sample(rows, 4) == [0, 25, 50, 75]
