"""Where an adapter is saved: a read-only or full disk, a file in the way, a folder of the
user's, or a STENO_HOME that is not a folder is one line, and leaves no work folder."""

import errno
import pathlib

import pytest

from app.cli import main
from engine.errors import StenoError
from trainer.api import TrainSettings, train_adapter
from trainer.records import DataReport
from trainer.train import work_dir

QUICK = TrainSettings(epochs=1, device="cpu", rehearsal=0, evaluate=False)


def _text_only():
    """Text-only adaptation: valid data that needs no audio, so the run fails where its output goes."""
    sentences = ["the patient was given five milligrams of amlodipine", "please schedule a follow up next week"]
    return DataReport(pairs=[], texts=sentences, terms=["amlodipine"], rejected=[], eval_pairs=[])


def _left_behind(out):
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] if out.parent.is_dir() else []


def test_out_under_a_file_is_one_line(tiny_model_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "adapter"
    with pytest.raises(StenoError) as e:
        train_adapter(tiny_model_dir, _text_only(), out, QUICK)
    assert "\n" not in str(e.value) and "work folder" in str(e.value)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_read_only_disk_is_one_line_and_leaves_no_work_folder(tiny_model_dir, tmp_path, monkeypatch):
    real_mkdir = pathlib.Path.mkdir

    def read_only(self, *a, **k):
        if self.name.endswith(".work"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    out = tmp_path / "adapter"
    with pytest.raises(StenoError, match="Read-only file system") as e:
        train_adapter(tiny_model_dir, _text_only(), out, QUICK)
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)
    assert _left_behind(out) == [] and not out.exists()


def test_full_disk_is_one_line_and_leaves_no_work_folder(tiny_model_dir, tmp_path, monkeypatch):
    import trainer.train

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(trainer.train, "atomic_write_text", full)
    out = tmp_path / "adapter"
    with pytest.raises(StenoError, match="disk full") as e:
        train_adapter(tiny_model_dir, _text_only(), out, QUICK)
    assert "\n" not in str(e.value)
    assert not work_dir(out).exists() and not out.exists()


def test_a_folder_of_the_users_is_never_replaced_by_an_adapter(tiny_model_dir, tmp_path):
    out = tmp_path / "Documents"
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"years of work")
    with pytest.raises(StenoError, match="not an adapter") as e:
        train_adapter(tiny_model_dir, _text_only(), out, QUICK)
    assert str(out) in str(e.value)
    assert (out / "thesis.docx").read_bytes() == b"years of work" and _left_behind(out) == []


def test_merge_never_replaces_a_folder_of_the_users(tiny_model_dir, tmp_path):
    from tests.engine.test_model_integrity import tiny_adapter
    from trainer.api import merge_adapter

    adapter = tiny_adapter(tiny_model_dir, tmp_path / "adapter")
    out = tmp_path / "Documents"
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"years of work")
    with pytest.raises(StenoError, match="not a model") as e:
        merge_adapter(adapter, tiny_model_dir, out)
    assert str(out) in str(e.value)
    assert [p.name for p in out.iterdir()] == ["thesis.docx"]
    assert merge_adapter(adapter, tiny_model_dir, tmp_path / "merged") == tmp_path / "merged"  # a new folder is fine


def test_steno_home_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("STENO_HOME", str(home))
    assert main(["models"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "STENO_HOME" in err[0] and str(home) in err[0]
    from engine.models.whisper_install import install_whisper_model

    with pytest.raises(StenoError, match="STENO_HOME"):
        install_whisper_model("whisper-tiny.en")
    assert home.read_text() == "not a folder"


def test_read_only_steno_home_is_one_line_at_setup(tmp_path, monkeypatch):
    from engine.models.registry import models_dir
    from engine.models.whisper_install import install_whisper_model

    def read_only(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(pathlib.Path, "mkdir", read_only)
    with pytest.raises(StenoError, match="Read-only file system") as e:
        install_whisper_model("whisper-tiny.en")
    assert str(models_dir()) in str(e.value) and "STENO_HOME" in str(e.value) and "\n" not in str(e.value)
