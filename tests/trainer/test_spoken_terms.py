"""Teaching a word list without recordings: term sentences spoken by TTS voices, trained on by
either model family (`steno train --words`, trainer.api.speak_terms)."""

import json
import shutil

import pytest
import torch

from app.cli import main
from engine.bridge.folder import save_model
from tests.helpers import tiny_model
from tests.trainer.test_trainer import _tiny_whisper
from trainer.api import TrainSettings, collect_data, speak_terms, train_adapter
from trainer.records import DataReport
from trainer.spoken_terms import (
    BENCH_VOICES,
    EVAL_VOICES,
    MAX_DEFAULT,
    add_spoken_terms,
    default_count,
    eval_sentences,
    sentences,
)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (setup.sh)")
TERMS = ["apixaban", "Kennedy", "rivaroxaban"]
FAST = dict(epochs=1, rehearsal=0, evaluate=False, device="cpu", batch_size=4)


def test_every_term_is_said_in_the_users_own_sentences_or_carrier_ones():
    docs = ["The clinic switched him to rivaroxaban last spring.", "Nothing to see here today."]
    said = sentences(TERMS, docs, 12, seed=0)
    assert len(said) == 12
    for term in TERMS:
        assert sum(term in s for s in said) >= 4
    assert docs[0] in said and docs[1] not in said
    assert default_count(3) == 48 and default_count(50) == 200 and default_count(5000) == MAX_DEFAULT
    held = eval_sentences(TERMS, 4, seed=0)
    assert not set(held) & set(said) and all(any(t in s for t in TERMS) for s in held)


def test_spoken_clips_are_made_once_in_training_voices_and_held_out_ones(tmp_path):
    data = DataReport(pairs=[], texts=["apixaban"], terms=TERMS, rejected=[], eval_pairs=[])
    messages = []
    out = add_spoken_terms(data, tmp_path / "s", count=10, seed=0, callback=lambda p: messages.append(p.message))
    assert len(out.pairs) == 10 and len(out.eval_pairs) == 4 and out.eval_source
    train_voices = {p.source for p in out.pairs}
    assert len(train_voices) >= 3 and not train_voices & {f"spoken:{v}" for v in EVAL_VOICES + BENCH_VOICES}
    assert {p.source for p in out.eval_pairs} <= {f"spoken:{v}" for v in EVAL_VOICES}
    assert all(p.audio.is_file() and 1.0 < p.seconds < 10 for p in out.pairs + out.eval_pairs)
    assert "speaking your terms 10/10" in messages and out.problem("whisper") is None
    stamps = [p.audio.stat().st_mtime_ns for p in out.pairs]
    again = add_spoken_terms(data, tmp_path / "s", count=10, seed=0, callback=lambda p: messages.append(p.message))
    assert [p.audio.stat().st_mtime_ns for p in again.pairs] == stamps and [p.text for p in again.pairs] == [
        p.text for p in out.pairs]

    calls = iter(range(100))
    stopped = add_spoken_terms(data, tmp_path / "c", count=10, seed=0, cancel=lambda: next(calls) >= 2)
    assert len(stopped.pairs) == 2 and not stopped.eval_pairs
    assert add_spoken_terms(data, tmp_path / "n", count=0) is data
    no_terms = DataReport(pairs=[], texts=[], terms=[], rejected=[], eval_pairs=[])
    assert add_spoken_terms(no_terms, tmp_path / "n", count=10) is no_terms


def test_a_whisper_model_learns_a_word_list_without_recordings(tmp_path):
    words = tmp_path / "drugs.txt"
    words.write_text("\n".join(TERMS) + "\n")
    base = _tiny_whisper(tmp_path / "whisper-model")
    data = collect_data(word_list=words)
    assert "Teach these words" in data.problem("whisper")  # it says how
    spoken = speak_terms(data, 4)  # raised to 10, the fewest pairs a run takes
    result = train_adapter(base, spoken, tmp_path / "w", TrainSettings(**FAST))
    meta = json.loads((result.path / "steno_adapter.json").read_text())
    assert meta["target"] == "whisper" and meta["data"]["train_pairs"] == 10 and result.steps == 3


def test_steno_train_words_speaks_the_terms_for_a_bridge_model(tmp_path, capsys):
    torch.manual_seed(0)
    base = save_model(tiny_model("hubert", "conv", "gpt2", seed=0).eval(), tmp_path / "tiny-base")
    words = tmp_path / "drugs.txt"
    words.write_text("\n".join(TERMS) + "\n")
    args = ["train", "--words", str(words), "--base", str(base), "--out", str(tmp_path / "a"), "--spoken", "10",
            "--epochs", "1", "--rehearsal", "0", "--device", "cpu", "-q"]
    assert main(args) == 0
    meta = json.loads((tmp_path / "a" / "steno_adapter.json").read_text())
    assert meta["data"]["train_pairs"] == 10 and meta["data"]["eval_source"] == "spoken term sentences"
    assert "adapter saved" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(args + ["--spoken", "-3"])
    assert "use a whole number" in capsys.readouterr().err
    assert main(args[:-1] + ["--spoken", "0", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "steno_adapter.json").read_text())["data"]["train_pairs"] == 0
