"""`steno batch`: inputs and outputs, the index, resuming, and a real Ray head (one per module)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from app.batch import BatchSettings, run_batch, worker_shape
from app.batch_index import INDEX_NAME, Index, load_index
from app.batch_sources import find_inputs
from app.batch_worker import BatchWorker, WorkerSettings
from engine.errors import StenoError
from tests.conftest import espeak

ROOT = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
WORDS = ["doctor", "music", "pencil", "river", "summer", "table", "window", "letter", "morning", "water",
         "office", "paper"]  # words whisper-tiny.en hears in espeak-ng's voice: each transcript shows its file


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A dozen short clips in nested folders, two sharing a stem, and one corrupt file."""
    root = tmp_path_factory.mktemp("archive")
    for i, word in enumerate(WORDS):
        folder = root / ("2019" if i < 6 else "2020/june")
        folder.mkdir(parents=True, exist_ok=True)
        espeak(f"please write the word {word} in the notes", folder / f"take{i % 6}.wav", rate=140)
    (root / "2020" / "notes.txt").write_text("not audio, not read")
    (root / "2020" / "take0.mp3").write_bytes(os.urandom(4000))  # corrupt
    return root


def index_rows(out: Path) -> dict[str, dict]:
    return load_index(out)


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    code = "from app.cli import main; raise SystemExit(main())"
    return subprocess.run([sys.executable, "-c", code, "batch", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, **kw)


# ------------------------------------------------------------------------ no Ray


def test_inputs_mirror_the_tree_and_never_collide(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    for name in ("a/x.wav", "a/x.flac", "b/x.wav", "a/.hidden.wav", "a/readme.txt"):
        (src / name).write_bytes(b"RIFF")
    jobs, missing = find_inputs([str(src)], tmp_path / "out")
    assert [j.rel for j in jobs] == ["a/x.flac", "a/x.wav", "b/x.wav"]
    assert missing == []


def test_manifest_with_missing_files_records_them(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    manifest = tmp_path / "list.tsv"
    manifest.write_text("# archive\na.wav\tsome text\n\ngone.wav\n")
    jobs, missing = find_inputs([str(manifest)], tmp_path / "out")
    assert [j.path.name for j in jobs] == ["a.wav"]
    assert len(missing) == 1 and "file not found" in missing[0].error and "line 4" in missing[0].error


@pytest.mark.parametrize("case", ["empty", "inside", "absent"])
def test_unusable_sources_are_one_line_errors(tmp_path, case):
    src = tmp_path / "src"
    src.mkdir()
    out = tmp_path / "out"
    if case == "inside":
        (src / "a.wav").write_bytes(b"RIFF")
        out = src / "transcripts"
    if case == "absent":
        src = tmp_path / "nothing-here"
    with pytest.raises(StenoError) as e:
        find_inputs([str(src)], out)
    assert str(src) in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()


def test_cli_bad_sources_are_one_line_before_any_work(tmp_path, capsys):
    from app.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"steno: error: {tmp_path / 'empty'}: no audio files")
    assert not (tmp_path / "out").exists()


def test_cli_passes_speakers_to_every_transcription_and_refuses_a_bad_count(tmp_path, monkeypatch, capsys):
    import app.batch
    from app.cli import main

    seen = []
    monkeypatch.setattr(app.batch, "run_batch", lambda settings: seen.append(settings) or _Done())
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "out"), "--speakers", "2", "-q"]) == 0
    assert seen[0].worker.options["speakers"] == 2
    with pytest.raises(SystemExit):
        main(["batch", str(tmp_path), "--out", str(tmp_path / "out"), "--speakers", "0"])
    assert "--speakers" in capsys.readouterr().err


class _Done:
    interrupted, failed = False, 0

    def line(self) -> str:
        return "0 done"


def test_two_runs_cannot_share_an_output_folder(tmp_path):
    first = Index(tmp_path)
    with pytest.raises(StenoError, match="another `steno batch` is writing"):
        Index(tmp_path)
    first.close()
    Index(tmp_path).close()


@pytest.mark.parametrize("cpus,gpus,biggest,workers", [(2, 0, 2, 3), (2, 0, 2, None), (64, 0, 16, None),
                                                       (48, 4, 16, None), (2, 1, 2, 3), (7, 0, 7, 3)])
def test_workers_always_fit_the_cluster(cpus, gpus, biggest, workers):
    n, cpu_each, gpu_each = worker_shape(cpus, gpus, biggest, workers)
    assert n == (workers or (gpus or max(1, cpus // 4)))
    assert 0 < n * cpu_each <= cpus and cpu_each <= biggest
    assert n * gpu_each <= gpus and gpu_each <= 1


def test_torn_index_line_is_skipped(tmp_path):
    (tmp_path / INDEX_NAME).write_text('{"path": "/a.wav", "status": "done"}\n{"path": "/b.wav", "sta')
    assert list(load_index(tmp_path)) == ["/a.wav"]


def test_in_process_run_records_corrupt_file_and_resumes(tmp_path, tiny_model_dir, speech_wav):
    src = tmp_path / "in"
    src.mkdir()
    good = src / "speech.wav"
    os.replace(speech_wav, good)
    (src / "broken.wav").write_bytes(os.urandom(3000))
    settings = BatchSettings(sources=[str(src)], out_dir=tmp_path / "out", formats=["txt", "srt"], in_process=True,
                             worker=WorkerSettings(model=str(tiny_model_dir), device="cpu"), quiet=True)
    first = run_batch(settings)
    assert (first.done, first.failed, first.skipped) == (1, 1, 0)
    rows = index_rows(tmp_path / "out")
    assert rows[str(good)]["outputs"] == ["speech.wav.txt", "speech.wav.srt"]
    assert (tmp_path / "out" / "speech.wav.srt").is_file()
    broken = rows[str(src / "broken.wav")]
    assert broken["status"] == "failed" and "broken.wav" in broken["error"] and "\n" not in broken["error"]
    second = run_batch(settings)
    assert (second.done, second.failed, second.skipped) == (0, 1, 1)
    settings.formats = ["txt", "json"]  # a format not yet written: the file is done again
    third = run_batch(settings)
    assert (third.done, third.failed, third.skipped) == (1, 1, 0)
    assert len((tmp_path / "out" / INDEX_NAME).read_text().splitlines()) == 2  # one row per input


def test_ctrl_c_keeps_what_finished_and_the_next_run_goes_on(tmp_path, tiny_model_dir, speech_wav, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (src / name).write_bytes(Path(speech_wav).read_bytes())
    real = BatchWorker.transcribe
    calls = []

    def interrupted_at_the_second(self, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, path)

    monkeypatch.setattr(BatchWorker, "transcribe", interrupted_at_the_second)
    settings = BatchSettings(sources=[str(src)], out_dir=tmp_path / "out", in_process=True,
                             worker=WorkerSettings(model=str(tiny_model_dir), device="cpu"), quiet=True)
    first = run_batch(settings)
    assert first.interrupted and first.done == 1
    assert [r["status"] for r in index_rows(tmp_path / "out").values()] == ["done"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(BatchWorker, "transcribe", real)
    second = run_batch(settings)
    assert (second.done, second.skipped, second.interrupted) == (2, 1, False)


def test_worker_on_a_node_without_the_model_says_so(tiny_model_dir):
    """What a cluster node without the model (or with another version of it) answers `ready()`."""
    absent = BatchWorker(WorkerSettings(model="whisper-base", device="cpu")).ready()
    assert "whisper-base" in absent["error"] and "\n" not in absent["error"]
    other = BatchWorker(WorkerSettings(model=str(tiny_model_dir), model_id="0" * 16, device="cpu"))
    assert "differs from the driver's" in other.ready()["error"]
    result = other.transcribe("any.wav")
    assert result.transcript is None and "steno setup" in result.error


def test_unreachable_address_is_one_line(tmp_path, tiny_model_dir, capsys):
    from app.cli import main

    src = tmp_path / "a.wav"
    src.write_bytes(b"RIFF")
    port = _free_port()
    code = main(["batch", str(src), "--out", str(tmp_path / "out"), "--model", str(tiny_model_dir), "--address",
                 f"127.0.0.1:{port}", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("steno: error")]
    assert len(errors) == 1 and f"127.0.0.1:{port}" in errors[0] and "Traceback" not in err


# ------------------------------------------------------------------------ a real Ray head


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head` on 127.0.0.1 with random ports, 2 CPUs and no dashboard; stopped after
    the module by killing its own process group (`ray stop` would stop every Ray on the machine)."""
    if not RAY.exists():
        pytest.skip("ray is not installed")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = _free_port()
    cmd = [str(RAY), "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
           "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false", "--disable-usage-stats",
           "--object-store-memory", str(100 * 1024**2), "--temp-dir", temp,
           "--dashboard-agent-listen-port", str(_free_port()),
           "--metrics-export-port", str(_free_port()), "--runtime-env-agent-port", str(_free_port())]
    head = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.fail("the Ray head did not start")
    yield {"address": f"127.0.0.1:{port}", "temp": temp}
    os.killpg(head.pid, signal.SIGKILL)  # SIGTERM drains for 30 s; nothing on this test head needs keeping
    head.wait(timeout=20)
    _kill_leftovers(temp)
    shutil.rmtree(temp, ignore_errors=True)


def _kill_leftovers(temp: str) -> None:
    """Ray processes of this head that left its process group (workers), found by its temp dir."""
    for pid in _pids_matching(lambda args: temp in args):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _pids_matching(keep) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if keep(args):
            out.append(int(entry.name))
    return out


def _workers_of(temp: str) -> list[int]:
    """The BatchWorker actors of this head: children of its raylet (their own command line is a title)."""
    raylets = set(_pids_matching(lambda args: temp in args and "raylet" in args))
    return [pid for pid in _pids_matching(lambda args: args.startswith("ray::BatchWorker")) if _ppid(pid) in raylets]


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "disabled"}


def test_cluster_run_survives_a_killed_worker_and_resumes(archive, ray_head, real_tiny_en, tmp_path):
    """Twelve clips and a corrupt file over two workers on a real head; one worker is killed
    mid-run; a second run transcribes nothing again and retries only the corrupt file."""
    out = tmp_path / "out"
    args = (str(archive), "--out", str(out), "--model", str(real_tiny_en), "--address", ray_head["address"],
            "--format", "txt,json", "--device", "cpu")
    code = "from app.cli import main; raise SystemExit(main())"
    run = subprocess.Popen([sys.executable, "-c", code, "batch", *args, "--workers", "2", "-q"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.time() + 180
    killed = None
    while killed is None and time.time() < deadline and run.poll() is None:
        workers = _workers_of(ray_head["temp"])
        if workers and any(row["status"] == "done" for row in index_rows(out).values()):
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = run.communicate(timeout=180)
    assert killed is not None, "the run ended before a worker could be killed"
    assert run.returncode == 1, stderr
    assert "a worker died" in stderr
    rows = index_rows(out)
    done = {p: row for p, row in rows.items() if row["status"] == "done"}
    failed = [row for row in rows.values() if row["status"] == "failed"]
    assert len(done) == 12 and len(failed) == 1, stderr
    assert failed[0]["path"] == str(archive / "2020" / "take0.mp3") and "\n" not in failed[0]["error"]
    assert len({row["worker"] for row in done.values()}) >= 2  # both workers, and the one that replaced the dead
    heard = 0
    for i, word in enumerate(WORDS):  # each transcript is its own file's: no other file's word in it
        rel = f"{'2019' if i < 6 else '2020/june'}/take{i % 6}.wav"
        text = (out / f"{rel}.txt").read_text().lower()
        assert not [w for w in WORDS if w != word and w in text], (rel, text)
        heard += word in text
        assert json.loads((out / f"{rel}.json").read_text())["source"].endswith(rel)
    assert heard >= 10
    assert "12 done, 1 failed, 0 skipped" in stderr

    written = {p: (out / f"{row['rel']}.txt").stat().st_mtime_ns for p, row in done.items()}
    again = cli(*args, "--workers", "1", env=_env())
    assert again.returncode == 1  # the corrupt file is tried again, and fails again
    assert "0 done, 1 failed, 12 skipped" in again.stderr
    assert all(index_rows(out)[p] == row for p, row in done.items())  # not one file transcribed again
    assert all((out / f"{row['rel']}.txt").stat().st_mtime_ns == written[p] for p, row in done.items())
