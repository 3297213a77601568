"""Hostile and unlucky input on the command line (issue 27): never lose a file, never a
traceback, one line naming the file and the problem, and every path problem found before
the model loads."""

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _run(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("steno: error")]


def _no_model(monkeypatch) -> list:
    """Replace the Transcriber: a test that must not load a model fails if it is built."""
    import engine.transcriber

    built = []

    class Refused:
        def __init__(self, *a, **kw):
            built.append(a)
            raise AssertionError("the model was loaded before the path problems were found")

    monkeypatch.setattr(engine.transcriber, "Transcriber", Refused)
    return built


class _FakeTranscriber:
    """Says `text` for any audio: lets eval be checked against an output the tiny model cannot give."""

    name, device_text = "fake", "cpu"

    def __init__(self, *a, **kw):
        self.timing = SimpleNamespace(encoder_seconds=0.1, decoder_seconds=0.1, audio_seconds=1.0)
        self.calls = 0

    def transcribe(self, audio, **kw):
        self.calls += 1
        return SimpleNamespace(text="words the reference does not have")


# ------------------------------------------------------------------ 1: outputs that must not be replaced


def test_an_output_that_is_an_input_is_refused_and_the_recording_kept(tiny_model_dir, speech_wav, tmp_path,
                                                                    capsys):
    victim = Path(speech_wav)
    original = victim.read_bytes()
    rc, _, err = _run(["transcribe", str(victim), "-o", str(victim), "--model", str(tiny_model_dir), "-q"], capsys)
    assert rc == 1 and victim.read_bytes() == original
    [line] = _errors(err)
    assert str(victim) in line and "input" in line

    rec = tmp_path / "rec.txt"  # a recording whose name makes its transcript's default path its own
    rec.write_bytes(original)
    rc, _, err = _run(["transcribe", str(rec), speech_wav, "--model", str(tiny_model_dir), "-q"], capsys)
    assert rc == 1 and rec.read_bytes() == original
    [line] = _errors(err)
    assert "rec.txt" in line and "Traceback" not in err
    assert (tmp_path / "speech.txt").is_file()  # the other input is still transcribed


def test_an_output_that_is_a_pipe_or_a_folder_is_refused_not_replaced(tiny_model_dir, speech_wav, tmp_path,
                                                                      capsys):
    fifo = tmp_path / "out.txt"
    os.mkfifo(fifo)
    rc, _, err = _run(["transcribe", speech_wav, "-o", str(fifo), "--model", str(tiny_model_dir), "-q"], capsys)
    assert rc == 1 and fifo.is_fifo()  # the atomic rename used to replace it with a regular file
    assert "not a regular file" in _errors(err)[0]

    folder = tmp_path / "speech.docx"  # the default output path is taken by a folder
    (folder / "inside").mkdir(parents=True)
    rc, _, err = _run(["transcribe", speech_wav, "--format", "docx", "--model", str(tiny_model_dir), "-q"], capsys)
    assert rc == 1 and (folder / "inside").is_dir()
    assert "folder" in _errors(err)[0]


def test_atomic_writes_follow_links_and_refuse_what_is_not_a_file(tmp_path):
    from engine.files import atomic_write_text

    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="named pipe"):
        atomic_write_text(fifo, "x")
    assert fifo.is_fifo() and not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------ 2: same-stem inputs


def test_same_stem_inputs_get_one_output_each(tiny_model_dir, speech_wav, tone_wav, tmp_path, capsys):
    a_wav, a_flac = tmp_path / "a.wav", tmp_path / "a.flac"
    a_wav.write_bytes(Path(speech_wav).read_bytes())
    sf.write(a_flac, sf.read(tone_wav)[0], 16000)
    rc, _, err = _run(["transcribe", str(a_wav), str(a_flac), "--format", "json", "--model",
                       str(tiny_model_dir)], capsys)
    assert rc == 0, err
    sources = {p.name: json.loads(p.read_text())["source"] for p in tmp_path.glob("a*.json")}
    assert sources == {"a.wav.json": str(a_wav), "a.flac.json": str(a_flac)}
    assert "wrote" in err and f"{a_wav}.json" in err


def test_the_same_input_twice_is_refused_before_any_work(speech_wav, tmp_path, monkeypatch, capsys):
    built = _no_model(monkeypatch)
    outdir = tmp_path / "outs"
    rc, _, err = _run(["transcribe", speech_wav, speech_wav, "-o", str(outdir)], capsys)
    assert rc == 1 and not built and "more than once" in _errors(err)[0]

    other = tmp_path / "other" / Path(speech_wav).name  # same name, another folder: one output path
    other.parent.mkdir()
    other.write_bytes(Path(speech_wav).read_bytes())
    rc, _, err = _run(["transcribe", speech_wav, str(other), "-o", str(outdir)], capsys)
    [line] = _errors(err)
    assert rc == 1 and not built and "would both be written" in line and str(other) in line
    assert not outdir.exists()


# ------------------------------------------------------------------ 3: one failure does not stop the batch


def test_an_export_failure_does_not_stop_the_other_files(tiny_model_dir, speech_wav, tone_wav, tmp_path,
                                                         monkeypatch, capsys):
    import engine.text.exporters as exporters

    real = exporters.atomic_write_bytes

    def disk_full_for_speech(path, data):
        if Path(path).stem == "speech":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(exporters, "atomic_write_bytes", disk_full_for_speech)
    outdir = tmp_path / "outs"
    rc, _, err = _run(["transcribe", speech_wav, str(tone_wav), "-o", str(outdir), "--model", str(tiny_model_dir)],
                      capsys)
    assert rc == 1
    [line] = _errors(err)
    assert "speech.txt" in line and "No space left" in line
    assert [p.name for p in outdir.iterdir()] == ["tone.txt"]  # the second file was still transcribed


# ------------------------------------------------------------------ 7: damaged audio


@pytest.mark.parametrize("case", ["nan", "inf", "1hz"])
def test_damaged_samples_or_header_are_one_line(tiny_model_dir, tmp_path, case, capsys):
    x = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    bad = tmp_path / f"{case}.wav"
    if case == "1hz":
        sf.write(bad, x, 1, subtype="PCM_16")  # resampling 1 Hz to 16 kHz would ask for 16000x the samples
    else:
        x[100] = np.nan if case == "nan" else np.inf
        sf.write(bad, x, 16000, subtype="FLOAT")
    rc, out, err = _run(["transcribe", str(bad), "--model", str(tiny_model_dir), "-q"], capsys)
    assert rc == 1 and out == ""
    [line] = _errors(err)
    assert bad.name in line and ("NaN" in line if case != "1hz" else "1 Hz" in line)


# ------------------------------------------------------------------ 10: stdout that cannot be written


def _cli(*argv, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app.cli", *argv], env=env, stderr=subprocess.PIPE, text=True,
                          timeout=120, **kw)


def test_stdout_on_a_full_device_is_one_line(tiny_model_dir, speech_wav):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "w") as full:
        proc = _cli("transcribe", speech_wav, "--model", str(tiny_model_dir), "--format", "json", "-q", stdout=full)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["steno: error: cannot write to standard output (No space left on device)"]


def test_stdout_into_a_closed_pipe_is_one_line(tiny_model_dir, speech_wav):
    """`steno transcribe a.wav | true`: the reader is gone before the transcript is ready."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = _cli("transcribe", speech_wav, "--model", str(tiny_model_dir), "--format", "json", "-q", stdout=write)
    finally:
        os.close(write)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["steno: error: cannot write to standard output (Broken pipe)"]


def test_a_command_that_prints_into_a_closed_pipe_is_one_line():
    """`steno models | true`: what print() buffered fails at the last flush (larger output inside print())."""
    read, write = os.pipe()
    os.close(read)
    try:
        models = _cli("models", stdout=write)
    finally:
        os.close(write)
    assert "Traceback" not in models.stderr and "Exception ignored" not in models.stderr
    assert models.returncode == 1
    assert models.stderr.strip().splitlines() == ["steno: error: cannot write to standard output (Broken pipe)"]


# ------------------------------------------------------------------ 11: beam width


@pytest.mark.parametrize("beam", ["0", "-1", "100000", "wide"])
def test_a_beam_outside_1_to_16_is_refused_before_anything_loads(speech_wav, beam, monkeypatch, capsys):
    built = _no_model(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        main(["transcribe", speech_wav, "--beam", beam])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and not built
    assert "--beam" in err and "1 (greedy) to 16" in err and "Traceback" not in err


def test_beams_1_to_16_are_accepted():
    from app.cli import build_parser

    for beam in (1, 16):
        assert build_parser().parse_args(["transcribe", "a.wav", "--beam", str(beam)]).beam == beam


def test_the_beam_limit_is_the_model_config_s():
    """One limit for --beam and steno.json's decode.beam_size: app/cli.py keeps no copy of its own."""
    import ast

    from app.cli import build_parser
    from engine.models.config import MAX_BEAM

    tree = ast.parse((ROOT / "app" / "cli.py").read_text(encoding="utf-8"))
    assigned = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    imported = {(node.module, a.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for a in node.names}
    assert "MAX_BEAM" not in assigned and ("engine.models.config", "MAX_BEAM") in imported
    assert build_parser().parse_args(["transcribe", "a.wav", "--beam", str(MAX_BEAM)]).beam == MAX_BEAM


# ------------------------------------------------------------------ 14: eval


def test_eval_with_empty_references_prints_no_infinity(speech_wav, tmp_path, monkeypatch, capsys):
    import engine.transcriber

    monkeypatch.setattr(engine.transcriber, "Transcriber", _FakeTranscriber)
    manifest = tmp_path / "dev.tsv"
    manifest.write_text("speech.wav\t\n")
    rc, out, err = _run(["eval", "--manifest", str(manifest), "--json", "-q"], capsys)
    assert rc == 0, err
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert report["wer"] is None and report["cer"] is None and report["utterances"] == 1
    rc, out, _ = _run(["eval", "--manifest", str(manifest), "-q"], capsys)
    assert rc == 0 and "inf" not in out and "WER          n/a" in out


def test_eval_names_the_bad_manifest_line_before_any_work(speech_wav, tmp_path, monkeypatch, capsys):
    built = _no_model(monkeypatch)
    manifest = tmp_path / "dev.tsv"
    manifest.write_text("# comment\nspeech.wav\thello world\nmissing.wav\tgone\n")
    rc, _, err = _run(["eval", "--manifest", str(manifest), "-q"], capsys)
    assert rc == 1 and not built
    [line] = _errors(err)
    assert "dev.tsv" in line and "line 3" in line and "missing.wav" in line and "file not found" in line


def test_eval_keeps_the_work_on_good_rows_when_one_cannot_be_decoded(speech_wav, tmp_path, monkeypatch, capsys):
    import engine.transcriber

    monkeypatch.setattr(engine.transcriber, "Transcriber", _FakeTranscriber)
    (tmp_path / "damaged.wav").write_bytes(b"RIFF not really a wave file at all" * 10)
    manifest = tmp_path / "dev.tsv"
    manifest.write_text("speech.wav\thello world\ndamaged.wav\tgone\nspeech.wav\thello again\n")
    rc, out, err = _run(["eval", "--manifest", str(manifest), "--json", "-q"], capsys)
    assert rc == 1
    [line] = _errors(err)
    assert "line 2" in line and "damaged.wav" in line
    report = json.loads(out)
    assert report["utterances"] == 2 and [f["line"] for f in report["failed"]] == [2]
    rc, out, _ = _run(["eval", "--manifest", str(manifest), "-q"], capsys)
    assert rc == 1 and "utterances   2" in out and "1 not decoded, left out" in out


# ------------------------------------------------------------------ 15: no display


@pytest.mark.parametrize("display", [None, ":97"])
def test_gui_without_a_display_says_so_in_one_line(display):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    if display:
        env["DISPLAY"] = display  # nothing listens there
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "app.cli", "gui"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr  # Qt used to abort: 134
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("steno: error: no display found") and "steno transcribe" in line


# ------------------------------------------------------------------ also: quiet, decoder noise, FIFOs, empty files


def test_the_cuda_notice_is_said_once_and_never_with_q(tiny_model_dir, speech_wav, monkeypatch, caplog, capsys):
    """onnxruntime-gpu lists CUDA on machines where it cannot start; this forces that case."""
    import engine.runtime as runtime

    if runtime.torch.cuda.is_available():
        pytest.skip("CUDA really starts here")
    monkeypatch.setattr(runtime.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(runtime, "_cuda_notice_said", False)
    caplog.set_level(logging.WARNING)
    assert _run(["transcribe", speech_wav, "--model", str(tiny_model_dir), "-q"], capsys)[0] == 0
    assert not [r for r in caplog.records if "CUDA" in r.getMessage()]
    for _ in range(2):
        assert _run(["transcribe", speech_wav, "--model", str(tiny_model_dir)], capsys)[0] == 0
    assert len([r for r in caplog.records if "could not start CUDA" in r.getMessage()]) == 1


def test_a_text_file_named_mp3_is_one_line_without_decoder_notes(tiny_model_dir, tmp_path, capfd):
    fake = tmp_path / "notes.mp3"
    fake.write_text("hello, this is a text file and not an mp3 at all\n" * 3)
    rc = main(["transcribe", str(fake), "--model", str(tiny_model_dir), "-q"])
    err = capfd.readouterr().err
    assert rc == 1
    assert err.strip().splitlines() == _errors(err) and len(_errors(err)) == 1, err  # no "Note: ..." from mpg123
    assert "notes.mp3" in err


def test_a_fifo_as_input_is_refused_not_waited_on(tiny_model_dir, tmp_path, monkeypatch, capsys):
    built = _no_model(monkeypatch)
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    stop = threading.Event()

    def unblock():  # without the fix a reader waits for a writer: open and close one, so the test ends
        while not stop.is_set():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            time.sleep(0.05)

    threading.Thread(target=unblock, daemon=True).start()
    try:
        rc, _, err = _run(["transcribe", str(fifo), "--model", str(tiny_model_dir)], capsys)
    finally:
        stop.set()
    assert rc == 1 and not built
    [line] = _errors(err)
    assert "stream.wav" in line and "named pipe" in line


def test_path_problems_are_found_before_the_model_loads(speech_wav, tmp_path, monkeypatch, capsys):
    built = _no_model(monkeypatch)
    empty = tmp_path / "empty.wav"
    empty.touch()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    cases = [
        ([str(empty)], "empty file (0 bytes)"),
        ([str(tmp_path / "nope.wav")], "file not found"),
        ([speech_wav, "-o", str(blocker / "out.txt")], "blocker is a file, not a folder"),
        ([speech_wav, "--hints", str(tmp_path / "no-hints.txt")], "word list not found"),
    ]
    for argv, problem in cases:
        rc, _, err = _run(["transcribe", *argv], capsys)
        assert rc == 1 and problem in err, err
        assert len(_errors(err)) == 1 and "Traceback" not in err
    assert not built


# ------------------------------------------------------------------ damaged model folders in `steno models`


def test_models_lists_a_damaged_model_with_the_reason(tiny_model_dir, capsys):
    """An empty weights file, and damage that kept size and time (only a full hash finds it)."""
    from engine.models import integrity
    from engine.models.registry import models_dir

    empty = models_dir() / "empty-weights"
    shutil.copytree(tiny_model_dir, empty)
    (empty / "lm" / "model.safetensors").write_bytes(b"")
    rotten = models_dir() / "rotten-weights"
    shutil.copytree(tiny_model_dir, rotten)
    integrity.record_files(rotten)
    weights = rotten / "lm" / "model.safetensors"
    stat = weights.stat()
    with open(weights, "r+b") as f:  # same size, other bytes, then the old time back: bit rot
        f.seek(stat.st_size // 2)
        f.write(b"\x7f" * 2048)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    whole = models_dir() / "whole"
    shutil.copytree(tiny_model_dir, whole)
    rc, out, err = _run(["models"], capsys)
    assert rc == 0 and "Traceback" not in err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "DAMAGED:" in rows["empty-weights"] and "lm/model.safetensors" in rows["empty-weights"]
    assert "empty" in rows["empty-weights"]
    assert "DAMAGED:" in rows["rotten-weights"] and "sha256" in rows["rotten-weights"]
    assert "DAMAGED" not in rows["whole"]


# ------------------------------------------------------------------ steno setup on a full disk


@pytest.mark.parametrize("model", ["whisper-tiny.en", "steno-default-en"])
def test_setup_on_a_full_disk_is_one_line_naming_the_path(model, tmp_path, monkeypatch, capsys):
    import engine.models.importers.whisper as importer
    from engine.models.default_install import SHIPPED
    from engine.models.registry import models_dir

    if model == "steno-default-en" and not (SHIPPED / "steno.json").is_file():
        pytest.skip("no trained default model shipped")
    full = tmp_path / "disk" / "model.safetensors"

    def no_space(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(full))

    monkeypatch.setattr(importer, "import_whisper", no_space)  # both installers start by converting Whisper
    rc, _, err = _run(["setup", "--model", model, "-q"], capsys)
    assert rc == 1 and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("steno: error: ") and str(full) in line and "disk full" in line
    assert not (models_dir() / model).exists()  # nothing that looks installed
