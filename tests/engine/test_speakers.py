"""Speaker labels: the encoder's weights, diarization of a two-voice interview, segments split
at a speaker change, speakers in saved transcripts and every export, and bad input."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf

from engine.errors import StenoError
from engine.speakers import voice
from engine.speakers.diarize import Diarization, Turn, diarize, parse_speakers
from engine.speakers.labels import label_segments
from engine.speakers.profiles import Profile, match_profiles, voice_of
from engine.text.exporters import render
from engine.text.transcript import Segment, Transcript, Word
from tests.conftest import espeak

LINES = [("en-gb-scotland+f4", "The river rose fast last night and the whole lower town is underwater now."),
         ("en-us+klatt", "How many families were evacuated before the bridge closed this morning?"),
         ("en-gb-scotland+f4", "About two hundred families, most of them from the farms along the east bank."),
         ("en-us+klatt", "And where are they staying tonight while the water keeps rising?")]


@pytest.fixture(scope="module")
def interview(tmp_path_factory):
    """Two espeak-ng voices taking turns, 0.35 s apart; the reference turns as (start, end, voice)."""
    import soxr

    tmp = tmp_path_factory.mktemp("interview")
    parts, ref, t = [], [], 0.0
    for i, (v, text) in enumerate(LINES):
        a, rate = sf.read(espeak(text, tmp / f"{i}.wav", v), dtype="float32")
        a = soxr.resample(a, rate, 16000).astype(np.float32)
        ref.append((t, t + len(a) / 16000, v))
        parts += [a, np.zeros(5600, np.float32)]
        t += len(a) / 16000 + 0.35
    audio = np.concatenate(parts)
    path = tmp / "interview.wav"
    sf.write(path, audio, 16000)
    return path, audio, ref


def words(text: str, start: float, step: float = 0.4) -> list[Word]:
    return [Word(w, start + i * step, start + i * step + step * 0.8, 0.9) for i, w in enumerate(text.split())]


def test_the_weights_are_checked_before_loading(tmp_path):
    bad = tmp_path / "pretrained.pt"
    bad.write_bytes(voice.weights_path().read_bytes()[:-10] + b"0123456789")
    with pytest.raises(StenoError, match="damaged"):
        voice.VoiceEncoder(bad)


def test_two_voices_are_told_apart_and_the_interview_split_by_turn(interview):
    _, audio, ref = interview
    e = np.stack([voice_of(audio, [(s, e)])[0] for s, e, _ in ref])
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    sims = e @ e.T
    assert min(sims[0, 2], sims[1, 3]) > max(sims[0, 1], sims[0, 3], sims[1, 2], sims[2, 3])  # same voice closer
    with pytest.raises(StenoError, match="too little"):
        voice_of(audio, [(0.0, 1.0)])
    d = diarize(audio, 2)
    assert d.speakers == 2
    said = [d.speaker_at(s, e) for s, e, _ in ref]
    assert said[0] == said[2] != said[1] == said[3]


def test_a_segment_holding_two_speakers_is_split_between_their_sentences():
    # "...underwater. How many families...?" in one row: the turn changes after "underwater."
    d = Diarization([Turn(0.0, 2.05, 0), Turn(2.05, 5.0, 1)], np.eye(2, 256, dtype=np.float32))
    seg = Segment(0.0, 4.4, "The town is underwater. How many families were evacuated?",
                  words("The town is underwater. How many families were evacuated?", 0.0, 0.45))
    lone = Segment(6.0, 7.0, "Thanks.", [])
    out = label_segments([seg, lone], d, ["Reporter", None])
    assert [(s.speaker, s.text) for s in out] == [("Reporter", "The town is underwater."),
                                                  ("Speaker 1", "How many families were evacuated?"),
                                                  ("Speaker 1", "Thanks.")]
    assert out[0].start == 0.0 and out[1].end == 4.4 and out[0].end <= out[1].start
    assert all(w.speaker == s.speaker for s in out for w in s.words)
    # a turn edge a word too early does not cut the sentence: it goes whole to its main speaker
    d = Diarization([Turn(0.0, 1.5, 0), Turn(1.5, 5.0, 1)], d.centroids)
    seg = Segment(0.0, 4.4, "The town is underwater. How many families were evacuated?",
                  words("The town is underwater. How many families were evacuated?", 0.0, 0.45))
    assert [s.text for s in label_segments([seg], d)] == ["The town is underwater.", "How many families were evacuated?"]
    # unnamed speakers are numbered in the order they first speak, whatever the clustering's order
    later = Segment(0.0, 1.0, "Hello.", words("Hello.", 0.0))
    assert label_segments([later], Diarization([Turn(0.0, 1.0, 1)], d.centroids))[0].speaker == "Speaker 1"


def test_speakers_are_saved_renamed_and_exported():
    t = Transcript([Segment(0.0, 2.0, "Where were you?", words("Where were you?", 0.0), speaker="Speaker 1"),
                    Segment(2.5, 4.0, "At home.", words("At home.", 2.5), speaker="Speaker 2"),
                    Segment(4.5, 6.0, "All night?", [], speaker="Speaker 1")])
    for seg in t.segments:
        for w in seg.words:
            w.speaker = seg.speaker
    assert t.rename_speaker("Speaker 1", "  Ana   Ruiz ") == 2
    assert t.speakers == ["Ana Ruiz", "Speaker 2"]
    d = t.to_dict()
    assert d["version"] == 2 and [s["speaker"] for s in d["segments"]] == ["Ana Ruiz", "Speaker 2", "Ana Ruiz"]
    assert {w["speaker"] for w in d["segments"][0]["words"]} == {"Ana Ruiz"}
    back = Transcript.from_dict(json.loads(json.dumps(d)))
    assert [s.speaker for s in back.segments] == ["Ana Ruiz", "Speaker 2", "Ana Ruiz"]
    assert back.segments[0].words[0].speaker == "Ana Ruiz"
    assert render(t, "txt").decode() == "Ana Ruiz: Where were you?\n\nSpeaker 2: At home.\n\nAna Ruiz: All night?\n"
    vtt = render(t, "vtt").decode()
    assert "<v Ana Ruiz>Where were you?" in vtt and "<v Speaker 2>At home." in vtt
    srt = render(t, "srt").decode()
    assert "Ana Ruiz: Where were you?" in srt and "Speaker 2: At home." in srt
    with zipfile.ZipFile(__import__("io").BytesIO(render(t, "docx"))) as z:
        body = z.read("word/document.xml").decode()
    assert "Ana Ruiz: " in body and "Speaker 2: " in body
    # a transcript without speakers stays version 1, and an old file reads with none
    plain = Transcript([Segment(0.0, 1.0, "Hello.")])
    assert plain.to_dict()["version"] == 1 and "speaker" not in plain.to_dict()["segments"][0]
    assert Transcript.from_dict(plain.to_dict()).segments[0].speaker is None
    with pytest.raises(StenoError, match="name cannot be empty"):
        t.rename_speaker("Speaker 2", "  ")


def test_saved_voices_name_the_speakers_they_match():
    a, b = np.eye(2, 256, dtype=np.float32)
    centroids = np.stack([b * 0.95 + a * 0.31, a])  # speaker 0 sounds like "Bo", speaker 1 like nobody
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    far = np.zeros(256, np.float32)
    far[5] = 1
    assert match_profiles(centroids, [Profile("Bo", b), Profile("Al", far)]) == ["Bo", None]
    # one name per transcript: two speakers alike to one profile, only the closer gets it
    assert match_profiles(np.stack([b, b * 0.9 + a * 0.43]), [Profile("Bo", b)], 0.8) == ["Bo", None]


@pytest.mark.parametrize("value, message", [("0", "from 1 to"), ("21", "from 1 to"), ("two", "'auto' or"),
                                            ("-1", "from 1 to")])
def test_bad_speaker_counts_are_one_line(value, message):
    with pytest.raises(StenoError, match=message):
        parse_speakers(value)
    assert parse_speakers("auto") is None and parse_speakers(" 3 ") == 3


def test_silence_and_more_speakers_than_speech_give_a_clear_result(interview):
    silence = np.zeros(16000 * 3, np.float32)
    assert diarize(silence, None).turns == []
    _, audio, _ = interview
    short = audio[: 16000 * 2]
    d = diarize(short, 12)  # two seconds cannot hold twelve voices: as many as there are windows
    assert 1 <= d.speakers <= 3 and d.turns


def test_cli_labels_speakers_and_refuses_zero(interview, real_tiny_en, tmp_path, capsys):
    from app.cli import main

    path, _, _ = interview
    with pytest.raises(SystemExit):
        main(["transcribe", str(path), "--speakers", "0"])
    err = capsys.readouterr().err
    assert "--speakers" in err and "Traceback" not in err
    out = tmp_path / "interview.json"
    assert main(["transcribe", str(path), "--model", str(real_tiny_en), "--speakers", "2", "-q",
                 "--format", "json", "-o", str(out)]) == 0
    segs = json.loads(out.read_text())["segments"]
    names = [s["speaker"] for s in segs]
    assert len(set(names)) == 2 and names[0] != names[-1]
    said = " ".join(s["text"] for s in segs if s["speaker"] == names[0]).lower()
    assert "river" in said and "evacuated" not in said  # no row mixes the two voices' sentences


def test_a_failed_labelling_keeps_the_transcript(interview, real_tiny_en, tmp_path, monkeypatch, capsys):
    import engine.speakers.diarize as diarization
    from app.cli import main

    def broken(*a, **k):
        raise RuntimeError("embedding exploded")

    monkeypatch.setattr(diarization, "diarize", broken)
    _, audio, ref = interview
    sf.write(tmp_path / "one.wav", audio[: round(ref[0][1] * 16000) + 4000], 16000)
    out = tmp_path / "one.json"
    assert main(["transcribe", str(tmp_path / "one.wav"), "--model", str(real_tiny_en), "--speakers", "auto",
                 "-q", "--format", "json", "-o", str(out)]) == 0
    t = Transcript.from_dict(json.loads(out.read_text()))
    assert "river" in t.text.lower() and all(s.speaker is None for s in t.segments)
    assert "embedding exploded" in t.meta["speakers_error"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "speakers not labelled" in err[0] and "without them" in err[0]


def test_a_long_recording_clusters_a_sample_and_places_every_window(interview, monkeypatch):
    import engine.speakers.diarize as diarization

    _, audio, ref = interview
    monkeypatch.setattr(diarization, "MAX_CLUSTERED", 8)  # as a 2-hour file does past 4000 windows
    d = diarize(audio, 2)
    said = [d.speaker_at(s, e) for s, e, _ in ref]
    assert said[0] == said[2] != said[1] == said[3]


def test_cancel_while_telling_speakers_apart_stops_the_job(interview, real_transcriber):
    from engine.transcriber import Cancelled

    path, _, _ = interview
    stop = []
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if message == "telling speakers apart":
            stop.append(True)

    with pytest.raises(Cancelled):
        real_transcriber.transcribe(path, speakers="auto", progress=progress, cancel=lambda: bool(stop))
    assert stop and seen == sorted(seen)  # progress only went forward, into the speaker step


def test_labels_per_window_become_turns_split_between_windows():
    """Windows.diarization: the step a clustering hands its labels to, without the encoder."""
    from engine.speakers.diarize import Windows

    a, b = np.eye(256, dtype=np.float32)[:2]
    starts = [[0.0, 0.75, 1.5, 2.25], [5.0]]  # a 3.75 s region, then a short one
    windows = Windows([(0.0, 3.75), (5.0, 6.0)], starts, np.stack([a, a, b, b, a]))
    d = windows.diarization(np.array([3, 3, 1, 1, 3]))
    assert d.speakers == 2
    assert [(round(t.start, 3), round(t.end, 3), t.speaker) for t in d.turns] == [
        (0.0, 1.875, 0), (1.875, 3.75, 1), (5.0, 6.0, 0)]
