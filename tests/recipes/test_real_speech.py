"""Real-speech importers (recipes.real_speech) and the real choice set (bench.real_choice), on tiny
fixture checkouts laid out like each source repository."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from bench.devset import JFK_TEXT
from engine.errors import StenoError
from recipes import real_speech
from recipes.real_speech import import_source, read_clips, trainable

ROOT = real_speech.SOURCES_FILE.parent.parent


def tone(path, sr, seconds=0.5, fmt=None):
    t = np.arange(int(sr * seconds)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format=fmt)
    return path


def ljspeech(tmp_path):
    root = tmp_path / "lj" / "LJSpeech-1.1"
    tone(root / "wavs" / "LJ001-0001.wav", 22050, 1.0)
    tone(root / "wavs" / "LJ001-0002.wav", 22050)
    tone(root / "wavs" / "LJ001-0003.wav", 22050)
    (root / "metadata.csv").write_text(
        "LJ001-0001|Printing, in 1640, was new.|Printing, in sixteen forty, was new.\n"
        "LJ001-0002|He said: ask not what your country can do for you|He said: ask not what your country can do for you\n"
        "LJ001-0003|A clip whose wav is present.|A clip whose wav is present.\n"
        "LJ001-0009|A clip without its wav.|A clip without its wav.\n", encoding="utf-8")
    return root.parent


def test_ljspeech_is_resampled_normalised_and_keeps_the_dev_text_out(tmp_path):
    manifest = import_source("ljspeech", ljspeech(tmp_path), tmp_path / "out", exclude=[JFK_TEXT])
    rows = read_clips(manifest)
    assert [(r[0].name, r[1], r[2], r[3]) for r in rows] == [
        ("LJ001-0001.wav", "printing in sixteen forty was new", "LJ", True),
        ("LJ001-0003.wav", "a clip whose wav is present", "LJ", True)]
    audio, sr = sf.read(rows[0][0])
    assert sr == 16000 and len(audio) == 16000
    record = json.loads((manifest.parent / "source.json").read_text())
    assert record["repository"] == "PrernaSocity/lj_speech_dataset_part_1" and record["commit"]
    assert record["clips"] == 2 and record["left_out_as_eval_text"] == 1 and record["checkout_commit"] is None


def test_accent_archive_reads_mp3s_anywhere_and_marks_native_speakers(tmp_path):
    root = tmp_path / "whisper_project"
    tone(root / "english7.mp3", 44100, fmt="MP3")
    tone(root / "folder1" / "arabic3.mp3", 44100, fmt="MP3")
    (root / "speakers_all.csv").write_text(
        "age,age_onset,birthplace,filename,native_language,sex,speakerid,country,file_missing?,,,\n"
        '30,0,"ohio, usa",english7,english,male,1,usa,FALSE,,,\n'
        '30,9,"cairo, egypt",arabic3,arabic,female,2,egypt,FALSE,,,\n'
        '30,9,"x",dutch1,dutch,female,3,x,TRUE,,,\n', encoding="utf-8")
    rows = read_clips(import_source("accent_archive", root, tmp_path / "out"))
    assert sorted((r[2], r[3]) for r in rows) == [("arabic3", False), ("english7", True)]
    assert all(r[1].startswith("please call stella ask her") and r[1].endswith("at the train station") for r in rows)
    assert sf.info(rows[0][0]).samplerate == 16000


def test_speechocean762_keeps_each_speakers_split(tmp_path):
    root = tmp_path / "so"
    for split, utt, spk, text in [("train", "000010011", "0001", "WE CALL IT BEAR"),
                                  ("test", "000440005", "0044", "ANDY LIKES BROWN")]:
        tone(root / "WAVE" / f"SPEAKER{spk}" / f"{utt}.WAV", 16000)
        (root / split).mkdir(parents=True)
        (root / split / "text").write_text(f"{utt}\t{text}\n")
        (root / split / "wav.scp").write_text(f"{utt}\tWAVE/SPEAKER{spk}/{utt}.WAV\n")
        (root / split / "utt2spk").write_text(f"{utt}\t{spk}\n")
    rows = read_clips(import_source("speechocean762", root, tmp_path / "out"))
    assert [(r[1], r[2]) for r in rows] == [("we call it bear", "train-0001"), ("andy likes brown", "test-0044")]


def test_fsdd_takes_the_digit_from_the_name_and_upsamples(tmp_path):
    root = tmp_path / "fsdd"
    tone(root / "recordings" / "7_theo_3.wav", 8000)
    tone(root / "recordings" / "0_lucas_1.wav", 8000)
    rows = read_clips(import_source("fsdd", root, tmp_path / "out"))
    assert sorted((r[1], r[2], r[3]) for r in rows) == [("seven", "theo", True), ("zero", "lucas", False)]
    audio, sr = sf.read(rows[0][0])
    assert sr == 16000 and len(audio) == 8000


def test_a_wrong_checkout_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StenoError, match="speakers_all.csv"):
        import_source("accent_archive", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(StenoError, match="unknown source"):
        import_source("timit", tmp_path / "empty", tmp_path / "out")
    r = subprocess.run([sys.executable, "-m", "recipes.real_speech", "fsdd", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "recordings/" in r.stderr
    assert not (tmp_path / "out" / "fsdd" / "clips.tsv").exists()


def test_the_choice_sets_speakers_never_reach_training_and_are_what_it_measures(tmp_path, monkeypatch):
    from bench.real_choice import build

    root = tmp_path / "fsdd"
    for name in ("1_theo_0", "1_theo_9", "2_lucas_0", "3_george_4"):
        tone(root / "recordings" / f"{name}.wav", 8000, 0.1)
    import_source("fsdd", root, tmp_path / "real")
    lists = tmp_path / "held.json"
    lists.write_text(json.dumps({"_about": "x", "fsdd": {"speakers": ["theo"], "choose": ["1_theo_0"]}}))
    monkeypatch.setattr(real_speech, "HELD_OUT_FILE", lists)
    rows = read_clips(tmp_path / "real" / "fsdd" / "clips.tsv")
    assert sorted(r[2] for r in trainable("fsdd", rows)) == ["george", "lucas"]
    assert build(tmp_path / "real", tmp_path / "choice") == {"fsdd": 1}
    line = (tmp_path / "choice" / "fsdd.tsv").read_text().splitlines()
    assert len(line) == 1 and line[0].split("\t")[:3] == [str(tmp_path / "real/fsdd/wav/1_theo_0.wav"), "one", "theo"]


def test_the_shipped_speaker_lists_hold_out_native_speakers_of_every_source():
    lists = real_speech.held_out()
    assert set(lists) == set(real_speech.sources()) == set(real_speech.READERS)
    native = [s for s in lists["accent_archive"]["speakers"] if s.startswith("english")]
    assert len(native) >= 40 and len(lists["ljspeech"]["clips"]) >= 100 and "theo" in lists["fsdd"]["speakers"]


def test_words_outside_the_ctc_labels_are_told_apart():
    from bench.real_choice import spellable

    class Letters:  # one token per character
        def encode(self, text, add_special_tokens=False):
            return [ord(c) for c in text]

    labels = {ord(c) for c in " abc"}
    assert spellable("cab", Letters(), labels)
    assert not spellable("cabs", Letters(), labels)


def test_each_reference_word_is_marked_heard_or_missed():
    from bench.real_choice import word_hits

    assert word_hits(["call stella now", "", "six spoons"], ["call bella now please", "uh", "six"]) == [
        [True, False, True], [], [True, False]]


def test_measuring_one_more_model_keeps_the_earlier_rows_of_the_same_clips(tmp_path, monkeypatch, capsys):
    import bench.default_model
    from bench.real_choice import measure

    out = tmp_path / "choice"
    out.mkdir()
    (out / "ljspeech.tsv").write_text("a.wav\tone two\nb.wav\tthree four\n")
    said = {"old": ["one two", "three"], "new": ["one two", "three four"]}

    def fake_run(items, threads, repeats, ct2_root, engines):
        return {"references": [i.text for i in items], "audio_s": 2.0,
                "engines": {label: {"texts": said[label], "rtf_short": 0.1} for label, _, _ in engines}}

    monkeypatch.setattr(bench.default_model, "run", fake_run)
    measure(out, 0, 1, tmp_path, ["old=/models/old"])
    measure(out, 0, 1, tmp_path, ["new=/models/new"])
    saved = json.loads((out / "measured.json").read_text())
    assert list(saved["engines"]) == ["old", "new"] and saved["engines"]["new"]["model"] == "/models/new"
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| old") or line.startswith("| new")]
    assert rows[-2].startswith("| old | 25.0% |") and rows[-1].startswith("| new | 0.0% |")
    (out / "ljspeech.tsv").write_text("a.wav\tone two\n")  # other clips: the old rows no longer apply
    said["new"] = ["one two"]
    measure(out, 0, 1, tmp_path, ["new=/models/new"])
    assert list(json.loads((out / "measured.json").read_text())["engines"]) == ["new"]
