"""`steno batch`: an archive transcribed by a pool of workers, each loading the model once.

Without `--address` the command starts a Ray instance on this machine and stops it at the
end; with one it joins an existing cluster; `--in-process` runs one worker inside the
command, without Ray. The driver (this process) alone reads and writes the output folder:
workers get paths and return transcripts, the driver writes each output atomically and then
the file's index row, so an interrupted run loses at most the files in flight and a second
run skips what is done and retries what failed. Why Ray, local by default, and how a
cluster is used: docs/batch.md.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from app.batch_index import Index, is_done
from app.batch_sources import Job, Missing, find_inputs, output_paths
from app.batch_worker import BatchWorker, FileResult, WorkerSettings
from engine.errors import StenoError, first_line

IN_FLIGHT_PER_WORKER = 2  # the next file waits on the worker, not on the driver's round trip
DEATHS_PER_FILE = 2  # a file whose worker died this often is recorded as failed, not tried forever
STARTUP_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 5.0
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2  # transcripts are small; the default takes 30% of memory


@dataclass
class BatchSettings:
    sources: list[str]
    out_dir: Path
    formats: list[str] = field(default_factory=lambda: ["txt"])
    address: str | None = None  # None: a local Ray instance; "auto" or HOST:PORT: an existing cluster
    in_process: bool = False
    workers: int | None = None
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    quiet: bool = False


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    first_seconds: float | None = None  # until the first file came back: starting Ray and loading the model
    interrupted: bool = False

    @property
    def rtf(self) -> float | None:
        """Aggregate real-time factor: wall time of the run over the audio it transcribed."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else None

    def line(self) -> str:
        rate = 60 * self.done / self.wall_seconds if self.wall_seconds else 0.0
        rtf = f"{self.rtf:.3f}" if self.rtf is not None else "-"
        head = "interrupted: " if self.interrupted else ""
        return (f"{head}{self.done} done, {self.failed} failed, {self.skipped} skipped; "
                f"{self.audio_seconds / 3600:.2f} h of audio in {self.wall_seconds:.0f} s "
                f"({rate:.1f} files/min, aggregate RTF {rtf})")


def run_batch(settings: BatchSettings) -> Summary:
    """Transcribe every input not already done; the summary says what happened."""
    out_dir = Path(os.path.abspath(settings.out_dir))
    jobs, missing = find_inputs(settings.sources, out_dir)
    worker = _driver_model(settings.worker)
    index = Index(out_dir)
    summary = Summary()
    try:
        for m in missing:
            _say(settings, f"steno: error: {m.path}: {m.error}")
            index.add(_row_missing(m))
            summary.failed += 1
        todo = []
        for job in jobs:
            outs = list(output_paths(out_dir, job.rel, settings.formats).values())
            if is_done(index.rows.get(str(job.path)), job.size, job.mtime, _model_key(worker), outs):
                summary.skipped += 1
            else:
                todo.append(job)
        if todo:
            _run(todo, settings, worker, index, out_dir, summary)
    finally:
        index.close()
    return summary


def _run(todo: list[Job], settings: BatchSettings, worker: WorkerSettings, index: Index, out_dir: Path,
         summary: Summary) -> None:
    bar = _Progress(len(todo), settings.quiet)
    start = time.perf_counter()
    results = _results(todo, settings, worker, bar.say)
    try:
        for job, result in results:
            if summary.first_seconds is None:
                summary.first_seconds = time.perf_counter() - start
            row = _record(job, result, settings.formats, out_dir, worker)
            index.add(row)
            if row["status"] == "done":
                summary.done += 1
                summary.audio_seconds += row["duration"] or 0.0
            else:
                summary.failed += 1
                bar.say(f"steno: error: {row['error']}")
            summary.wall_seconds = time.perf_counter() - start
            bar.update(summary)
    except KeyboardInterrupt:  # what finished is in the index; the files in flight run again next time
        summary.interrupted = True
    finally:
        summary.wall_seconds = time.perf_counter() - start
        bar.close()
        results.close()  # the workers stop, and a local Ray instance with them


def _driver_model(worker: WorkerSettings) -> WorkerSettings:
    """The model checked here first (a bad --model fails before any worker starts) and named so
    every node finds its own copy: an installed model by name, anything else by its path."""
    from engine.models.folder import check_folder
    from engine.models.registry import model_id, models_dir, resolve_model

    folder = resolve_model(worker.model)
    check_folder(folder)
    inside = Path(os.path.abspath(folder)).parent == Path(os.path.abspath(models_dir()))
    spec = folder.name if inside else os.path.abspath(folder)
    adapter = os.path.abspath(worker.adapter) if worker.adapter and os.path.exists(worker.adapter) else worker.adapter
    return WorkerSettings(**{**worker.__dict__, "model": spec, "model_id": model_id(folder), "adapter": adapter})


def _model_key(worker: WorkerSettings) -> str:
    return f"{worker.model_id}+{worker.adapter}" if worker.adapter else str(worker.model_id)


def _record(job: Job, result: FileResult, formats: list[str], out_dir: Path, worker: WorkerSettings) -> dict:
    """Write the file's outputs (each atomically), then say in its index row what happened."""
    from engine.text.exporters import export

    row = {"path": str(job.path), "rel": job.rel, "size": job.size, "mtime": job.mtime, "status": "failed",
           "duration": None, "rtf": None, "seconds": round(result.seconds, 3), "outputs": [],
           "error": result.error, "model": _model_key(worker), "worker": result.worker,
           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if result.transcript is None:
        return row
    duration = result.transcript.duration or 0.0
    try:
        for fmt, path in output_paths(out_dir, job.rel, formats).items():
            export(result.transcript, path, fmt)
            row["outputs"].append(path.relative_to(out_dir).as_posix())
    except StenoError as e:
        row["error"] = str(e)
        return row
    row.update(status="done", duration=round(duration, 3), error=None,
               rtf=round(result.seconds / duration, 4) if duration else None)
    return row


def _row_missing(m: Missing) -> dict:
    return {"path": str(m.path), "status": "failed", "outputs": [], "error": f"{m.path}: {m.error}",
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _results(todo: list[Job], settings: BatchSettings, worker: WorkerSettings, say) -> Iterator[tuple[Job, FileResult]]:
    if settings.in_process:
        return _in_process(todo, worker, say)
    return _on_ray(todo, settings, worker, say)


def _in_process(todo: list[Job], worker: WorkerSettings, say) -> Iterator[tuple[Job, FileResult]]:
    w = BatchWorker(worker)
    info = w.ready()
    if "error" in info:
        raise StenoError(info["error"])
    say(f"1 worker in this process: {info['device']}")
    for job in todo:
        yield job, w.transcribe(str(job.path))


# ------------------------------------------------------------------------------ Ray


def _on_ray(todo: list[Job], settings: BatchSettings, worker: WorkerSettings, say) -> Iterator[tuple[Job, FileResult]]:
    import ray

    started_here = settings.address is None
    _connect(settings.address)
    try:
        yield from _pool(todo, settings, worker, say)
    finally:
        ray.shutdown()  # a local instance stops; a cluster only loses this job and its workers
        if started_here:
            say("local Ray instance stopped")


def _connect(address: str | None) -> None:
    """A local instance (None) or an existing cluster; one line when the cluster cannot be reached."""
    import logging

    import ray

    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                  configure_logging=False, job_config=_job_config())
    logging.getLogger("ray").setLevel(logging.ERROR)  # its notices (token auth, ports) are not the user's business
    if address is None:
        ray.init(address="local", num_cpus=os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
        return
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "on this machine (--address auto)" if address == "auto" else f"at {address}"
        raise StenoError(f"cannot join a Ray cluster {where}: {first_line(e)} "
                         "(start one with `ray start --head`, or leave out --address to run here)") from None


def _job_config():
    """Workers import `app` and `engine` from where this process does (a checkout run in place)."""
    from ray.job_config import JobConfig

    return JobConfig(code_search_path=[str(Path(__file__).resolve().parents[1])])


def _check_reachable(address: str) -> None:
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise StenoError(f"--address {address!r}: use HOST:PORT (the head's GCS port, 6379 by default) or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise StenoError(f"cannot reach the Ray cluster at {address} ({why}); is `ray start --head` running "
                         "there, and the port open?") from None


def _worker_shape(settings: BatchSettings, worker: WorkerSettings) -> tuple[int, float, float]:
    import ray

    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0) if worker.device != "cpu" else 0.0
    biggest_node = max((node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")), default=1.0)
    return worker_shape(resources.get("CPU", 1.0), gpus, biggest_node, settings.workers)


def worker_shape(cpus: float, gpus: float, biggest_node: float, workers: int | None) -> tuple[int, float, float]:
    """(workers, CPUs each, GPUs each): one worker per GPU where the cluster has GPUs, else one
    per 4 CPUs. The CPUs (and GPUs) are shared out among the workers, in fractions rounded
    down where there are more workers than CPUs: all of them always fit, and can start."""
    cpus = max(1.0, cpus)
    n = workers or (int(gpus) if gpus >= 1 else max(1, int(cpus) // 4))
    each = min(float(int(cpus // n)) or math.floor(100 * cpus / n) / 100, max(biggest_node, 0.01))
    return n, each, (min(1.0, math.floor(100 * gpus / n) / 100) if gpus else 0.0)


def _pool(todo: list[Job], settings: BatchSettings, worker: WorkerSettings, say) -> Iterator[tuple[Job, FileResult]]:
    """Files handed to a pool of actors, a few ahead per worker. A worker that dies has its
    files handed to the others and is replaced; its running file counts a death against it."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    n, cpus, gpus = _worker_shape(settings, worker)
    worker = WorkerSettings(**{**worker.__dict__, "threads": max(1, int(cpus))})
    remote = ray.remote(BatchWorker).options(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_concurrency=1)
    actors = [remote.remote(worker) for _ in range(n)]
    say(f"starting {n} worker{'s' * (n != 1)} ({cpus:g} CPU{'s' * (cpus != 1)} each"
        f"{f', {gpus:g} GPU each' if gpus else ''}), each loading the model")
    try:
        infos = ray.get([a.ready.remote() for a in actors], timeout=STARTUP_TIMEOUT_S)
    except GetTimeoutError:
        raise StenoError(f"{n} worker(s) of {cpus:g} CPU{'s' * (cpus != 1)} did not start within "
                         f"{STARTUP_TIMEOUT_S:.0f} s; the cluster has {ray.cluster_resources()}") from None
    except RayActorError as e:
        raise StenoError(f"a worker could not start ({first_line(e)}); is Steno installed on every node?") from None
    for info in infos:
        if "error" in info:
            raise StenoError(f"worker {info['worker']}: {info['error']}")
    say(f"workers ready: {'; '.join(sorted({i['device'] for i in infos}))}")

    queue = deque(todo)
    deaths: dict[Path, int] = {}
    running: dict[object, deque] = {a: deque() for a in actors}  # actor -> its refs, oldest (running) first
    owner: dict[object, tuple[object, Job]] = {}

    def feed(actor) -> None:
        while queue and len(running[actor]) < IN_FLIGHT_PER_WORKER:
            job = queue.popleft()
            ref = actor.transcribe.remote(str(job.path))
            running[actor].append(ref)
            owner[ref] = (actor, job)

    starting: dict[object, object] = {}  # a replacement's ready() ref -> the replacement, fed once it is ready
    for a in actors:
        feed(a)
    while owner or starting:
        ready, _ = ray.wait([*owner, *starting], num_returns=1, timeout=1.0)  # a timeout keeps Ctrl+C heard
        if not ready:
            continue
        ref = ready[0]
        if ref in starting:
            _started(starting.pop(ref), ref, running, say)
            for a in list(running):
                feed(a)
            continue
        actor, job = owner.pop(ref)
        try:
            result = ray.get(ref)
        except RayActorError:
            held = _take_back(actor, ref, job, running, owner)
            deaths[held[0].path] = deaths.get(held[0].path, 0) + 1
            for j in reversed(held):
                if deaths.get(j.path, 0) >= DEATHS_PER_FILE:
                    yield j, FileResult(None, f"{j.path}: the worker transcribing it died {DEATHS_PER_FILE} times "
                                              "(a crash or out of memory); not tried again", 0.0, "")
                else:
                    queue.appendleft(j)
            say(f"steno: warning: a worker died; its {len(held)} file(s) go to the others and a new one starts")
            new = remote.remote(worker)
            starting[new.ready.remote()] = new
            for a in list(running):
                feed(a)
            continue
        except RayTaskError as e:
            result = FileResult(None, f"{job.path}: {first_line(e)}", 0.0, "")
        if actor in running and ref in running[actor]:
            running[actor].remove(ref)
        yield job, result
        if actor in running:
            feed(actor)
    if queue:  # every worker died and none could replace them: these files get no row, the next run does them
        raise StenoError(f"no worker is left; {len(queue)} file(s) were not transcribed: run the same command again")


def _started(actor, ref, running: dict, say) -> None:
    """A replacement worker that loaded its model joins the pool; one that could not is dropped."""
    import ray
    from ray.exceptions import RayActorError

    try:
        info = ray.get(ref)
    except RayActorError as e:
        say(f"steno: warning: a new worker could not start ({first_line(e)})")
        return
    if "error" in info:
        say(f"steno: warning: worker {info['worker']}: {info['error']}")
        return
    running[actor] = deque()


def _take_back(actor, ref, job: Job, running: dict, owner: dict) -> list[Job]:
    """The files a dead actor held, the one it was running first; its other refs are forgotten."""
    refs = running.pop(actor)
    jobs = {r: owner.pop(r)[1] for r in refs if r != ref and r in owner}
    jobs[ref] = job
    return [jobs[r] for r in refs if r in jobs]


class _Progress:
    """Files done, hours of audio, throughput and time left on one tqdm line on stderr."""

    def __init__(self, total: int, quiet: bool):
        self.quiet = quiet
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{n}/{total} files |{bar}| {elapsed}<{remaining}{postfix}")

    def update(self, summary: Summary) -> None:
        if self.bar is None:
            return
        rate = 60 * summary.done / summary.wall_seconds if summary.wall_seconds else 0.0
        rtf = f"{summary.rtf:.3f}" if summary.rtf is not None else "-"
        self.bar.set_postfix_str(f"{summary.audio_seconds / 3600:.2f} h audio, {rate:.1f} files/min, RTF {rtf}"
                                 + (f", {summary.failed} failed" if summary.failed else ""), refresh=False)
        self.bar.update(1)

    def say(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        elif not self.quiet or message.startswith("steno:"):
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _say(settings: BatchSettings, message: str) -> None:
    if not settings.quiet or message.startswith("steno:"):
        print(message, file=sys.stderr)
