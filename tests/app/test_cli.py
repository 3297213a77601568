"""`steno` on the command line: outputs, and one clear line (no traceback) for every bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from app.cli import main
from engine.text.exporters import FORMATS


def _run(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("fmt", FORMATS)
def test_transcribe_writes_each_format(tiny_model_dir, speech_wav, tmp_path, fmt, capsys):
    out = tmp_path / f"out.{fmt}"
    rc, _, err = _run(["transcribe", speech_wav, "--model", str(tiny_model_dir), "--format", fmt, "-o", str(out),
                       "-q"], capsys)
    assert rc == 0, err
    assert out.is_file() and out.stat().st_size > 0
    if fmt == "json":
        data = json.loads(out.read_text())
        assert data["format"] == "steno-transcript" and data["segments"]
        assert data["segments"][0]["end"] > data["segments"][0]["start"]
    if fmt == "srt":
        assert "-->" in out.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_several_files_go_to_an_output_folder(tiny_model_dir, speech_wav, tone_wav, tmp_path, capsys):
    outdir = tmp_path / "outs"
    outdir.mkdir()
    rc, _, err = _run(["transcribe", speech_wav, str(tone_wav), "--model", str(tiny_model_dir), "--format", "srt",
                       "-o", str(outdir)], capsys)
    assert rc == 0, err
    assert sorted(p.name for p in outdir.iterdir()) == ["speech.srt", "tone.srt"]
    assert "encoder+bridge on CPU" in err  # tells the user which device runs


def test_stereo_44k_input_is_transcribed_like_its_16k_mono_version(tiny_model_dir, speech_wav, tmp_path, capsys):
    import soxr

    mono, sr = sf.read(speech_wav, dtype="float32")
    up = soxr.resample(mono, sr, 44100)
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([up, up], axis=1), 44100)
    rc1, a, _ = _run(["transcribe", speech_wav, "--model", str(tiny_model_dir), "-q"], capsys)
    rc2, b, _ = _run(["transcribe", str(stereo), "--model", str(tiny_model_dir), "-q"], capsys)
    assert rc1 == rc2 == 0
    assert a.strip() == b.strip()


def test_silent_audio_gives_an_empty_transcript(tiny_model_dir, tmp_path, capsys):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000 * 3, np.float32), 16000)
    rc, out, err = _run(["transcribe", str(silent), "--model", str(tiny_model_dir), "--format", "json", "-q"], capsys)
    assert rc == 0, err
    assert json.loads(out)["segments"] == []


@pytest.mark.parametrize("case", ["missing", "corrupt", "empty", "directory"])
def test_bad_audio_is_one_line_naming_the_file_and_writes_nothing(tiny_model_dir, tmp_path, case, capsys):
    bad = tmp_path / f"bad_{case}.wav"
    if case == "corrupt":
        bad.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "empty":
        sf.write(bad, np.zeros(0, np.float32), 16000)
    elif case == "directory":
        bad.mkdir()
    out = tmp_path / "result.txt"
    out.write_text("previous result")
    rc, _, err = _run(["transcribe", str(bad), "--model", str(tiny_model_dir), "-o", str(out), "-q"], capsys)
    assert rc == 1
    lines = [line for line in err.splitlines() if line.startswith("steno: error")]
    assert len(lines) == 1 and bad.name in lines[0]
    assert "Traceback" not in err
    assert out.read_text() == "previous result"
    assert not list(tmp_path.glob(".*.tmp"))


def test_model_folder_with_missing_part_is_one_line(tiny_model_dir, speech_wav, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    shutil.rmtree(broken / "lm")
    rc, _, err = _run(["transcribe", speech_wav, "--model", str(broken)], capsys)
    assert rc == 1
    assert "lm/config.json" in err and str(broken) in err and "Traceback" not in err


def test_unknown_model_name_lists_what_is_installed(speech_wav, capsys):
    rc, _, err = _run(["transcribe", speech_wav, "--model", "no-such-model"], capsys)
    assert rc == 1 and "no-such-model" in err


def test_eval_prints_wer_cer_and_rtf(tiny_model_dir, speech_wav, tmp_path, capsys):
    manifest = tmp_path / "dev.tsv"
    manifest.write_text("speech.wav\thello world this is a test\n")  # relative to the manifest
    rc, out, err = _run(["eval", "--manifest", str(manifest), "--model", str(tiny_model_dir), "--json", "-q"], capsys)
    assert rc == 0, err
    report = json.loads(out)
    assert report["utterances"] == 1 and report["wer"] >= 0 and report["rtf"] > 0
    assert report["rows"][0]["reference"] == "hello world this is a test"


def test_eval_rejects_a_malformed_manifest(tiny_model_dir, tmp_path, capsys):
    manifest = tmp_path / "dev.tsv"
    manifest.write_text("no tab on this line\n")
    rc, _, err = _run(["eval", "--manifest", str(manifest), "--model", str(tiny_model_dir)], capsys)
    assert rc == 1 and "line 1" in err and "dev.tsv" in err


def test_export_onnx_command(tiny_model_dir, capsys):
    rc, out, _ = _run(["export-onnx", "--model", str(tiny_model_dir)], capsys)
    assert rc == 0 and "encoder_bridge.onnx" in out
    assert (tiny_model_dir / "encoder_bridge.onnx").is_file()


def test_export_onnx_makes_and_repairs_a_whisper_family_graph(real_tiny_en, tmp_path, capsys):
    """export-onnx used to load every model as a bridge model; a Whisper one has its own encoder graph."""
    import shutil

    from engine.graph import ONNX_NAME
    from engine.runtime import create_session

    folder = tmp_path / "whisper-tiny.en"
    shutil.copytree(real_tiny_en, folder)
    graph = folder / ONNX_NAME
    with open(graph, "r+b") as f:  # a damaged graph: half of it
        f.truncate(graph.stat().st_size // 2)
    rc, out, err = _run(["export-onnx", "--model", str(folder)], capsys)
    assert rc == 0 and "Traceback" not in err and str(graph) in out
    create_session(graph, "cpu")  # whole again
    graph.unlink()
    assert _run(["export-onnx", "--model", str(folder)], capsys)[0] == 0 and graph.is_file()


def test_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "app.cli", "transcribe", str(tmp_path / "nope.mp3"),
                           "--model", str(tmp_path / "nomodel")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("steno: error:")


def test_two_hour_file_is_transcribed_with_times_on_the_original_timeline(tiny_model_dir, tmp_path, capsys):
    """A 2-hour recording (mostly quiet) streams through: segments land where the speech is."""
    from tests.conftest import espeak

    speech, sr = sf.read(espeak("hello world this is a test", tmp_path / "s.wav"), dtype="float32")
    assert sr == 22050
    import soxr

    speech = soxr.resample(speech, sr, 16000)
    long_path = tmp_path / "interview.flac"
    places = [10.0, 2 * 3600 - 60.0]
    block = 16000 * 600
    rng = np.random.default_rng(0)
    with sf.SoundFile(long_path, "w", samplerate=16000, channels=1, format="FLAC", subtype="PCM_16") as f:
        for start in range(0, 2 * 3600 * 16000, block):
            chunk = (rng.standard_normal(block) * 1e-4).astype(np.float32)
            for p in places:
                i = int(p * 16000) - start
                if 0 <= i < block - len(speech):
                    chunk[i:i + len(speech)] += speech
            f.write(chunk)
    rc, out, err = _run(["transcribe", str(long_path), "--model", str(tiny_model_dir), "--format", "json", "-q"],
                        capsys)
    assert rc == 0, err
    data = json.loads(out)
    assert abs(data["duration"] - 7200) < 1
    starts = [s["start"] for s in data["segments"]]
    assert len(starts) == 2
    for s, p in zip(starts, places):
        assert abs(s - p) < 0.5


def test_device_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir, speech_wav, capsys):
    import torch

    rc, _, err = _run(["transcribe", speech_wav, "--model", str(tiny_model_dir), "--device", "cuda"], capsys)
    if torch.cuda.is_available():
        assert rc == 0
    else:
        assert rc == 1 and "CUDA" in err and "Traceback" not in err


def test_precision_flag_picks_the_decoder_weights(tiny_model_dir, speech_wav, tmp_path, capsys):
    """int8 by default on a CPU, fp32 on request: the fp32 run is the exact model's output."""
    from engine.transcriber import Transcriber

    texts = {}
    for flag in ("default", "fp32"):
        out = tmp_path / f"{flag}.json"
        extra = [] if flag == "default" else ["--precision", "fp32"]
        rc, _, err = _run(["transcribe", speech_wav, "--model", str(tiny_model_dir), "--format", "json", "-o",
                           str(out), *extra], capsys)
        assert rc == 0, err
        assert f"(torch, {'int8' if flag == 'default' else 'fp32'})" in err
        texts[flag] = " ".join(s["text"] for s in json.loads(out.read_text())["segments"])
    exact = Transcriber(tiny_model_dir, device="cpu", precision="fp32").transcribe(speech_wav)
    assert texts["fp32"] == " ".join(s.text for s in exact.segments)
    with pytest.raises(SystemExit):
        main(["transcribe", speech_wav, "--model", str(tiny_model_dir), "--precision", "int4"])


def test_a_guards_log_line_stands_on_its_own_line_and_the_bar_shows_the_stage(tiny_model_dir, speech_wav, tmp_path,
                                                                             capsys, monkeypatch):
    """What a guard removed is logged mid-transcription: on a line of its own, not glued to the
    progress bar; and a new stage at the same fraction ("transcribing") replaces "finding speech"."""
    import logging

    from engine.transcriber import Transcriber

    real = Transcriber.transcribe

    def guarded(self, source, **kw):
        kw["progress"](0.1, "finding speech")
        kw["progress"](0.1, "transcribing 3 segments")
        logging.getLogger("steno").warning("%s: 0.8-6.3 s: dropped-repetition removed 'uh, uh'", source)
        return real(self, source, **kw)

    monkeypatch.setattr(Transcriber, "transcribe", guarded)
    rc, _, err = _run(["transcribe", speech_wav, "--model", str(tiny_model_dir), "-o", str(tmp_path / "o.txt")], capsys)
    assert rc == 0
    lines = err.replace("\r", "\n").splitlines()
    [logged] = [line for line in lines if "removed 'uh, uh'" in line]
    assert logged.strip().endswith(f"{speech_wav}: 0.8-6.3 s: dropped-repetition removed 'uh, uh'"), err
    assert "%|" not in logged  # not glued to the bar
    assert "transcribing 3 segments" in err


def test_hint_mode_reaches_the_transcriber_and_a_bad_one_is_refused(tiny_model_dir, speech_wav, tmp_path, capsys,
                                                                     monkeypatch):
    from engine.transcriber import Transcriber

    words = tmp_path / "words.txt"
    words.write_text("amlodipine\nstop\namlodipine\n")
    modes = []
    real = Transcriber.transcribe

    def spy(self, source, **kw):
        modes.append((self.hint_mode, kw.get("hints")))
        return real(self, source, **kw)

    monkeypatch.setattr(Transcriber, "transcribe", spy)
    rc, _, err = _run(["transcribe", speech_wav, "--model", str(tiny_model_dir), "--hints", str(words),
                       "--hint-mode", "bias", "-q"], capsys)
    assert rc == 0, err
    assert modes == [("bias", ["amlodipine", "stop"])]  # the repeated term read once
    with pytest.raises(SystemExit):
        _run(["transcribe", speech_wav, "--hint-mode", "loud"], capsys)
    assert "invalid choice" in capsys.readouterr().err
