"""Trainer data in: every kind of source, and every kind of bad item rejected with its reason."""

import json

import numpy as np
import pytest
import soundfile as sf

from engine.errors import StenoError
from trainer.api import TrainSettings, collect_data, train_adapter
from trainer.data import MAX_TRANSCRIPT_CHARS, split_sentences, strip_markdown


def tone(path, seconds=1.0, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


def clip(folder, name, text, seconds=1.0):
    folder.mkdir(parents=True, exist_ok=True)
    tone(folder / f"{name}.wav", seconds)
    if text is not None:
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder / f"{name}.wav"


def reasons(report):
    return {item.rsplit("/", 1)[-1]: why for item, why in report.rejected}


def test_folder_pairs_and_every_bad_item_with_its_reason(tmp_path):
    d = tmp_path / "dictations"
    for i in range(12):
        clip(d, f"ok{i}", f"patient {i} takes amlodipine")
    clip(d, "no_transcript", None)
    (d / "orphan.txt").write_text("a transcript whose audio is gone")
    clip(d, "empty", "  \n ")
    clip(d, "huge", "word " * MAX_TRANSCRIPT_CHARS, seconds=20)
    clip(d, "too_fast", "this is far too much text for one second of audio, surely", seconds=1)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" + bytes(200))
    (d / "broken.txt").write_text("text of a broken file")
    clip(d, "latin1", None)
    (d / "latin1.txt").write_bytes("le patient a pris de l'amlodipine \xe0 midi".encode("latin-1"))
    sf.write(d / "silent.wav", np.zeros(16000, dtype=np.float32), 16000)
    (d / "silent.txt").write_text("nothing was said")
    sf.write(d / "long.wav", np.full(16000 * 31, 0.1, dtype=np.float32), 16000)
    (d / "long.txt").write_text("a long recording")
    (d / "notes.json").write_text("{}")

    report = collect_data([d], eval_fraction=0)
    assert len(report.pairs) == 12
    assert all(p.seconds == pytest.approx(1.0) for p in report.pairs)
    why = reasons(report)
    assert "no transcript" in why["no_transcript.wav"]
    assert "transcript without audio" in why["orphan.txt"]
    assert why["empty.wav"] == "empty transcript"
    assert "too long for one clip" in why["huge.wav"]
    assert "too long for its audio" in why["too_fast.wav"]
    assert "cannot decode audio" in why["broken.wav"]
    assert "not UTF-8" in why["latin1.txt"]
    assert why["silent.wav"] == "audio is silent"
    assert "at most 30 s" in why["long.wav"]
    assert "ignored" in why["notes.json"]
    summary = report.summary()
    assert "training pairs   12" in summary and f"rejected         {len(report.rejected)}" in summary
    assert "not UTF-8" in summary


def test_tsv_csv_and_jsonl_manifests(tmp_path):
    audio = tmp_path / "audio"
    for i in range(4):
        clip(audio, f"a{i}", None)
    (tmp_path / "set.tsv").write_text("audio\ttext\naudio/a0.wav\tstart metoprolol\n# a comment\n"
                                      "audio/missing.wav\tgone\nno tab here\n")
    (tmp_path / "set.csv").write_text('audio,text\naudio/a1.wav,"warfarin, five milligrams"\naudio/a2.wav,\n')
    (tmp_path / "set.jsonl").write_text(json.dumps({"audio": str(audio / "a3.wav"), "text": "stop lisinopril"})
                                        + "\n{not json\n" + json.dumps({"path": "audio/a0.wav"}) + "\n")
    report = collect_data([tmp_path / "set.tsv", tmp_path / "set.csv", tmp_path / "set.jsonl"], eval_fraction=0)
    assert sorted(p.text for p in report.pairs) == ["start metoprolol", "stop lisinopril", "warfarin, five milligrams"]
    why = dict(report.rejected)
    assert "transcript without audio" in why[f"{tmp_path / 'set.tsv'}:4"]
    assert "a tab" in why[f"{tmp_path / 'set.tsv'}:5"]
    assert why[f"{tmp_path / 'set.csv'}:3"] == "empty transcript"
    assert "not a JSON object" in why[f"{tmp_path / 'set.jsonl'}:2"]
    assert '"audio"' in why[f"{tmp_path / 'set.jsonl'}:3"]


def test_documents_word_list_and_terms(tmp_path):
    import docx

    (tmp_path / "letter.txt").write_text("Dear Dr Okafor.\n\nThe patient started apixaban. She feels well!\n")
    (tmp_path / "notes.md").write_text("# Plan\n\n- Continue **rivaroxaban** daily\n- See [clinic](http://x)\n"
                                       "```\ncode is not speech\n```\n")
    d = docx.Document()
    d.add_paragraph("Referral to Mr Adeyemi about dabigatran.")
    d.save(tmp_path / "referral.docx")
    (tmp_path / "bad.md").write_bytes(b"caf\xe9 au lait")
    (tmp_path / "sheet.xlsx").write_bytes(b"PK")
    (tmp_path / "broken.docx").write_bytes(b"not a zip file")

    report = collect_data(text=[tmp_path])
    assert "The patient started apixaban." in report.texts
    assert "Continue rivaroxaban daily" in report.texts and "See clinic" in report.texts
    assert not any("code is not speech" in t for t in report.texts)
    assert "Referral to Mr Adeyemi about dabigatran." in report.texts
    why = reasons(report)
    assert "not UTF-8" in why["bad.md"] and "not a .txt, .md or .docx" in why["sheet.xlsx"]
    assert "cannot read .docx" in why["broken.docx"]
    # no word list: the terms are the uncommon words of the training text
    assert {"apixaban", "rivaroxaban", "dabigatran", "okafor", "adeyemi"} <= set(report.terms)
    assert not {"patient", "daily", "about", "feels"} & set(report.terms)

    words = tmp_path / "drugs.txt"
    words.write_text("apixaban\nedoxaban # new\n\nwarfarin, heparin\n")
    report = collect_data(word_list=words)
    assert report.terms == ["apixaban", "edoxaban", "warfarin", "heparin"]
    assert report.texts[:4] == report.terms  # the terms are trained on as text too
    assert "word list" in report.terms_source
    report.check()  # text only is enough to train


def test_markdown_and_sentence_splitting():
    assert strip_markdown("## Title\n> quoted *text* and `code`\n| a | b |\n|---|---|") .split() == \
        ["Title", "quoted", "text", "and", "code", "a", "b"]
    long = "Then " + " ".join(["word"] * 100) + "."
    pieces = split_sentences("First one. Second one? " + long)
    assert pieces[:2] == ["First one.", "Second one?"] and all(len(p.split()) <= 40 for p in pieces[2:])


def test_automatic_split_is_deterministic_and_an_explicit_eval_set_is_kept_apart(tmp_path):
    d = tmp_path / "d"
    for i in range(20):
        clip(d, f"c{i:02d}", f"sentence number {i}")
    a = collect_data([d], seed=3)
    b = collect_data([d], seed=3)
    c = collect_data([d], seed=4)
    assert len(a.eval_pairs) == 3 and len(a.pairs) == 17
    assert [p.audio for p in a.eval_pairs] == [p.audio for p in b.eval_pairs]
    assert [p.audio for p in a.eval_pairs] != [p.audio for p in c.eval_pairs]
    assert not {p.audio for p in a.eval_pairs} & {p.audio for p in a.pairs}

    held = tmp_path / "held.tsv"
    held.write_text(f"{d / 'c00.wav'}\tsentence number 0\n{d / 'c01.wav'}\tsentence number 1\n")
    doc = tmp_path / "doc.txt"
    doc.write_text("Sentence number 0.\n\nSomething else entirely.\n")
    r = collect_data([d], text=[doc], eval_data=held)
    assert len(r.eval_pairs) == 2 and len(r.pairs) == 18 and r.eval_source == str(held)
    assert r.texts == ["Something else entirely."]  # the held-out sentence is not trained on
    assert any("kept for evaluation only" in why for _, why in r.rejected)
    assert "from " + str(held) in r.summary()


def test_too_little_data_is_refused_with_the_reason(tmp_path):
    d = tmp_path / "few"
    for i in range(5):
        clip(d, f"c{i}", f"only {i}")
    clip(d, "bad", "")
    report = collect_data([d])
    assert report.eval_pairs == []  # too few to split
    with pytest.raises(StenoError, match=r"only 5 usable audio\+transcript pair\(s\); at least 10") as e:
        train_adapter("no-such-model", report, tmp_path / "out", TrainSettings())
    assert "bad.wav: empty transcript" in str(e.value) and str(d) in str(e.value)
    with pytest.raises(StenoError, match="no usable training data"):
        train_adapter("no-such-model", collect_data([tmp_path / "missing"]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_settings_are_one_clear_line(tmp_path):
    words = tmp_path / "w.txt"
    words.write_text("apixaban\n")
    with pytest.raises(StenoError, match="bridge must be frozen, lora or full"):
        train_adapter("x", collect_data(word_list=words), tmp_path / "o", TrainSettings(bridge="half"))
