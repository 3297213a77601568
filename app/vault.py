"""Encryption at rest for the project library, unlocked with a passphrase.

Why it is built this way:

- The passphrase never encrypts files itself. scrypt turns it into a key-encryption key
  that wraps one random 256-bit data key, kept in `<library>/.steno-vault.json` with the
  salt and the scrypt cost. A wrong passphrase fails the wrapped key's AES-GCM tag, so it
  is caught before any project file is read or written; changing the passphrase rewrites
  only that small file.
- Each file is AES-256-GCM in 1 MiB chunks (the STREAM construction: nonce = random
  prefix + chunk counter + last-chunk flag, header as associated data), so a long
  recording never has to fit in memory twice, and a file cut short, reordered or altered
  fails to decrypt instead of reading as something else.
- `*.jsonl` files (the edit journal) are encrypted line by line, so an edit is still one
  appended, fsynced line.
- Every write is a temp file renamed over the original (os.replace). Turning encryption on
  or off records the library's state in the key file first ("encrypting"/"decrypting"),
  then converts file by file, each atomically; readers take both forms, so a crash in the
  middle loses nothing and `finish()` (run after the next unlock) completes the rest.
  A killed write or conversion can leave its temp file (plain text while decrypting) at
  any depth; every conversion sweeps the whole tree first, so none outlives the next one.
- Audio and training clips must reach decoders and the trainer as ordinary files, so while
  the library is unlocked they are decrypted on demand into a private (0700) folder in RAM
  when the system has one (`$XDG_RUNTIME_DIR`, else /dev/shm), removed on lock, at exit and
  on SIGTERM/SIGHUP. Its owner holds a lock on it for life, so the folder of a run killed
  outright is recognised (even if its pid was reused) and removed at the next app start,
  unlock or conversion.
"""

from __future__ import annotations

import atexit
import base64
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from engine.errors import StenoError
from engine.files import atomic_path, atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

KEYFILE = ".steno-vault.json"
MAGIC = b"\x89STENO-ENC\x01\n"  # \x89: never the start of text, JSON, WAV or FLAC
PREFIX_LEN = 7  # random nonce prefix per file; + 4-byte chunk counter + 1-byte last flag = 12
HEADER_LEN = len(MAGIC) + PREFIX_LEN
CHUNK = 1 << 20
TAG = 16
LINE_PREFIX = "enc1:"  # an encrypted journal line; plain lines are JSON and start with "{"
LINE_AAD = b"steno-journal-line-1"
WRAP_AAD = b"steno-vault-data-key-1"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 17, 8, 1  # ~0.35 s and 128 MiB per try: slows guessing
MIN_PASSPHRASE = 8
STATES = ("encrypting", "encrypted", "decrypting")

io_lock = threading.RLock()  # every library write and each file's conversion hold it
_keys: dict[str, object] = {}  # library root -> AESGCM with its data key, while unlocked
_keyfile_cache: dict[str, tuple[tuple, "KeyFile"]] = {}


class VaultError(StenoError):
    """Something about the encrypted library the user can act on."""


class WrongPassphrase(VaultError):
    """The passphrase does not open the library's key; nothing was read or changed."""


class VaultLocked(VaultError):
    """The library is encrypted and this session has not unlocked it."""


def _aesgcm(key: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _k(root: Path | str) -> str:
    return os.path.abspath(root)


# ------------------------------------------------------------------------- key file


@dataclass
class KeyFile:
    """The library's key: what unlocks it and what state a conversion left it in."""

    state: str  # encrypting | encrypted | decrypting
    salt: bytes
    n: int
    r: int
    p: int
    wrapped: bytes  # 12-byte nonce + AES-GCM(key-encryption key, data key)
    created: float

    def to_json(self) -> str:
        return json.dumps({"format": "steno-vault", "version": 1, "state": self.state, "created": self.created,
                           "kdf": {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": _b64(self.salt)},
                           "cipher": "AES-256-GCM", "wrapped_key": _b64(self.wrapped)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "KeyFile":
        d = json.loads(text)
        if d.get("format") != "steno-vault" or d.get("version") != 1 or d.get("state") not in STATES:
            raise ValueError("unknown format or state")
        kdf = d["kdf"]
        if kdf.get("name") != "scrypt":
            raise ValueError(f"unknown key derivation {kdf.get('name')!r}")
        return cls(d["state"], _unb64(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"]),
                   _unb64(d["wrapped_key"]), float(d.get("created", 0)))


def keyfile_path(root: Path) -> Path:
    return Path(root) / KEYFILE


def _read_keyfile(root: Path) -> KeyFile | None:
    """The key file, or None for a plain library. A damaged one is an error, never "plain":
    treating it as plain would write readable files into an encrypted library."""
    path = keyfile_path(root)
    try:
        st = path.stat()
    except FileNotFoundError:
        _keyfile_cache.pop(_k(root), None)
        return None
    sig = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = _keyfile_cache.get(_k(root))
    if hit and hit[0] == sig:
        return hit[1]
    try:
        kf = KeyFile.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise VaultError(f"the library's key file is damaged ({e}); restore it from a backup", path) from None
    _keyfile_cache[_k(root)] = (sig, kf)
    return kf


def _write_keyfile(root: Path, kf: KeyFile) -> None:
    path = keyfile_path(root)
    atomic_write_text(path, kf.to_json())
    os.chmod(path, 0o600)


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    text = unicodedata.normalize("NFC", passphrase)  # the same passphrase typed on another keyboard
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(text.encode("utf-8"))


def _wrap(passphrase: str, data_key: bytes, state: str, created: float | None = None) -> KeyFile:
    salt = os.urandom(16)
    kek = _kek(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    nonce = os.urandom(12)
    wrapped = nonce + _aesgcm(kek).encrypt(nonce, data_key, WRAP_AAD)
    return KeyFile(state, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, wrapped, created or time.time())


def _unwrap(kf: KeyFile, passphrase: str) -> bytes:
    from cryptography.exceptions import InvalidTag

    kek = _kek(passphrase, kf.salt, kf.n, kf.r, kf.p)
    try:
        return _aesgcm(kek).decrypt(kf.wrapped[:12], kf.wrapped[12:], WRAP_AAD)
    except InvalidTag:
        raise WrongPassphrase("wrong passphrase: the project library stays locked and nothing was changed") from None


def check_new_passphrase(passphrase: str) -> None:
    """Refuse passphrases too short to resist guessing (scrypt only slows each guess)."""
    if len(passphrase or "") < MIN_PASSPHRASE:
        raise VaultError(f"the passphrase is too short: use at least {MIN_PASSPHRASE} characters")


# ------------------------------------------------------------------------- state


def status(root: Path) -> str:
    """plain | encrypting | encrypted | decrypting ("encrypting" and "decrypting": a conversion is unfinished)."""
    kf = _read_keyfile(Path(root))
    return "plain" if kf is None else kf.state


def is_unlocked(root: Path) -> bool:
    return _k(root) in _keys


def needs_passphrase(root: Path) -> bool:
    """True when the library holds (or may hold) encrypted files and this session has no key."""
    return status(root) != "plain" and not is_unlocked(root)


def unlock(root: Path, passphrase: str) -> None:
    """Check the passphrase against the key file and keep the data key in memory.
    Raises WrongPassphrase (touching nothing) when it does not fit."""
    root = Path(root)
    kf = _read_keyfile(root)
    if kf is None:
        raise VaultError("the project library is not encrypted", root)
    _keys[_k(root)] = _aesgcm(_unwrap(kf, passphrase))
    clean_stale_views()
    remove_views_on_signals()


def lock(root: Path) -> None:
    """Forget the key and delete the decrypted copies of this library's audio."""
    _keys.pop(_k(root), None)
    drop_views(Path(root))


def _set_state(root: Path, state: str) -> None:
    with io_lock:
        kf = _read_keyfile(root)
        if kf is not None and kf.state != state:
            kf = KeyFile(state, kf.salt, kf.n, kf.r, kf.p, kf.wrapped, kf.created)
            _write_keyfile(root, kf)


def _write_key(root: Path):
    """The cipher for new files: None in a plain library or while encryption is being turned off."""
    kf = _read_keyfile(root)
    if kf is None or kf.state == "decrypting":
        return None
    aead = _keys.get(_k(root))
    if aead is None:
        raise VaultLocked("the project library is encrypted and locked: unlock it with its passphrase first", root)
    return aead


def _read_key(root: Path, path: Path):
    aead = _keys.get(_k(root))
    if aead is not None:
        return aead
    if _read_keyfile(root) is None:
        raise VaultError("this file is encrypted but the library has no key file (.steno-vault.json); "
                         "restore that file from a backup", path)
    raise VaultLocked("the project library is encrypted and locked: unlock it with its passphrase first", path)


# ------------------------------------------------------------------------- file format


def _nonce(prefix: bytes, i: int, last: bool) -> bytes:
    if i >= 1 << 32:
        raise VaultError("file too large to encrypt")
    return prefix + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _encrypt_stream(src: BinaryIO, dst: BinaryIO, aead) -> None:
    prefix = os.urandom(PREFIX_LEN)
    header = MAGIC + prefix
    dst.write(header)
    chunk, i = src.read(CHUNK), 0
    while True:
        nxt = src.read(CHUNK) if len(chunk) == CHUNK else b""
        last = not nxt
        dst.write(aead.encrypt(_nonce(prefix, i, last), chunk, header))
        if last:
            return
        chunk, i = nxt, i + 1


def _decrypt_stream(src: BinaryIO, dst: BinaryIO, aead, path: Path) -> None:
    from cryptography.exceptions import InvalidTag

    header = src.read(HEADER_LEN)
    if len(header) < HEADER_LEN or not header.startswith(MAGIC):
        raise VaultError("not an encrypted Steno file", path)
    prefix = header[len(MAGIC):]
    block, i = src.read(CHUNK + TAG), 0
    while True:
        nxt = src.read(CHUNK + TAG) if len(block) == CHUNK + TAG else b""
        last = not nxt
        try:
            dst.write(aead.decrypt(_nonce(prefix, i, last), block, header))
        except InvalidTag:
            raise VaultError("cannot decrypt: the file is damaged, cut short, or was encrypted with another key",
                             path) from None
        if last:
            return
        block, i = nxt, i + 1


def encrypt_bytes(data: bytes, aead) -> bytes:
    out = io.BytesIO()
    _encrypt_stream(io.BytesIO(data), out, aead)
    return out.getvalue()


def decrypt_bytes(data: bytes, aead, path: Path | None = None) -> bytes:
    out = io.BytesIO()
    _decrypt_stream(io.BytesIO(data), out, aead, path)
    return out.getvalue()


def encrypt_line(text: str, aead) -> str:
    nonce = os.urandom(12)
    return LINE_PREFIX + _b64(nonce + aead.encrypt(nonce, text.encode("utf-8"), LINE_AAD))


def decrypt_line(line: str, aead) -> str:
    """Raises ValueError for a line that is damaged or cut short (a crash mid-append)."""
    from cryptography.exceptions import InvalidTag

    try:
        raw = _unb64(line[len(LINE_PREFIX):])
        return aead.decrypt(raw[:12], raw[12:], LINE_AAD).decode("utf-8")
    except (InvalidTag, ValueError) as e:
        raise ValueError(f"damaged encrypted line ({type(e).__name__})") from None


def is_encrypted_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


# ------------------------------------------------------------------------- reading and writing


def read_bytes(path: Path, root: Path) -> bytes:
    """A file's contents, decrypted if it is encrypted (both forms exist during a conversion)."""
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return data
    return decrypt_bytes(data, _read_key(root, path), path)


def write_bytes(path: Path, data: bytes, root: Path) -> None:
    """Write atomically, encrypted when the library encrypts new files."""
    with io_lock:
        aead = _write_key(Path(root))
        atomic_write_bytes(path, encrypt_bytes(data, aead) if aead is not None else data)


def append_line(path: Path, line: str, root: Path) -> None:
    """Append one journal line and fsync it; encrypted on its own when the library is."""
    with io_lock:
        aead = _write_key(Path(root))
        text = (encrypt_line(line, aead) if aead is not None else line) + "\n"
        with open(path, "a+b") as f:
            if f.tell() > 0:  # a line a crash cut short must not swallow this one
                f.seek(f.tell() - 1)
                if f.read(1) != b"\n":
                    text = "\n" + text
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())


def read_lines(path: Path, root: Path) -> list[str]:
    """A journal's lines in plain text; a damaged encrypted line is skipped like a cut plain one."""
    out = []
    aead = None
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(LINE_PREFIX):
            aead = aead or _read_key(Path(root), Path(path))
            try:
                line = decrypt_line(line, aead)
            except ValueError as e:
                log.warning("%s: skipping a journal line (%s)", path, e)
                continue
        out.append(line)
    return out


def remove_file(path: Path) -> None:
    with io_lock:
        Path(path).unlink(missing_ok=True)


def seal_file(path: Path, root: Path) -> bool:
    """Encrypt one plain file in place if the library encrypts new files (a finished recording)."""
    with io_lock:
        aead = _write_key(Path(root))
        if aead is None:
            return False
        return _convert_file(Path(path), aead, encrypt=True)


def _convert_file(path: Path, aead, encrypt: bool) -> bool:
    """Encrypt or decrypt one file atomically; False when it was already in that form (or is gone)."""
    if not path.is_file():
        return False
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        out, changed = [], False
        for line in lines:
            if encrypt and not line.startswith(LINE_PREFIX):
                line, changed = encrypt_line(line, aead), True
            elif not encrypt and line.startswith(LINE_PREFIX):
                try:
                    line = decrypt_line(line, aead)
                except ValueError:
                    continue  # a cut line: the reader skips it either way
                changed = True
            out.append(line)
        if changed:
            atomic_write_text(path, "".join(ln + "\n" for ln in out))
        return changed
    if is_encrypted_file(path) == encrypt:
        return False
    with open(path, "rb") as src, atomic_path(path) as tmp:
        with open(tmp, "wb") as dst:
            (_encrypt_stream(src, dst, aead) if encrypt else _decrypt_stream(src, dst, aead, path))
            dst.flush()
            os.fsync(dst.fileno())
    return True


# ------------------------------------------------------------------------- whole library


Progress = Callable[[int, int, Path], None]


def library_files(root: Path) -> list[Path]:
    """Every file in every project folder, and the library's own top-level files; hidden entries (temp files and folders of atomic
    writes in progress) are left out."""
    out = []
    root = Path(root)
    if not root.is_dir():
        return out
    for folder in sorted(root.iterdir()):
        if folder.is_file() and not folder.name.startswith("."):  # the library's own files (saved voices)
            out.append(folder)
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return out


def _is_temp(name: str) -> bool:
    """`.NAME.XXXX.tmp`: a temp file or folder of engine.files' atomic writes."""
    return name.startswith(".") and name.endswith(".tmp")


def _remove_entry(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as e:
        log.error("cannot remove a leftover temp file %s: %s", path, e)


def _sweep_leftovers(root: Path) -> None:
    """Finish or remove what killed writes and conversions left anywhere in the library, at
    any depth: temp files and folders (`.NAME.XXXX.tmp`, which may hold plain text; the
    original beside them is whole) are removed; a `.NAME.old` folder (atomic_dir killed
    between its two renames) is put back when NAME is missing, else removed. Every library
    write holds io_lock for its whole temp-file life, so with the lock held these are leftovers."""
    root = Path(root)
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in [n for n in filenames if _is_temp(n)]:
            _remove_entry(here / name)
        for name in list(dirnames):
            if _is_temp(name):
                _remove_entry(here / name)
                dirnames.remove(name)
            elif name.startswith(".") and name.endswith(".old") and len(name) > len("..old"):
                dirnames.remove(name)
                original = here / name[1:-len(".old")]
                if original.exists():
                    _remove_entry(here / name)
                    continue
                try:
                    os.replace(here / name, original)  # the only copy: the new one never arrived
                    dirnames.append(original.name)
                except OSError as e:
                    log.error("cannot put back %s: %s", here / name, e)


def convert(root: Path, encrypt: bool, skip: Callable[[Path], bool] | None = None,
            progress: Progress | None = None) -> int:
    """Encrypt (or decrypt) every file of the library in place, one atomic file at a time.

    Files already in the wanted form are left alone, so running it again after a crash
    finishes the job. `skip(path)` keeps a file as it is for now (a recording still being
    written). Returns how many files changed. An exception from `progress` stops it between
    two files: nothing is half-converted."""
    root = Path(root)
    aead = _read_key(root, root)
    clean_stale_views()
    with io_lock:
        _sweep_leftovers(root)  # before listing: a folder put back is converted too
    files = library_files(root)
    changed, damaged = 0, []
    for i, path in enumerate(files, 1):
        if not (encrypt and skip is not None and skip(path)):
            try:
                with io_lock:
                    changed += _convert_file(path, aead, encrypt)
            except VaultError as e:  # one damaged file must not hold up the rest
                log.error("cannot convert %s", e)
                damaged.append(path)
        if progress is not None:
            progress(i, len(files), path)
    if damaged:
        more = f" and {len(damaged) - 1} more" if len(damaged) > 1 else ""
        raise VaultError(f"cannot decrypt {damaged[0]}{more}: damaged or encrypted with another key; every other "
                         "file was converted and the library stays readable", root)
    return changed


def enable(root: Path, passphrase: str, skip: Callable[[Path], bool] | None = None,
           progress: Progress | None = None) -> int:
    """Turn encryption on: make the key, record "encrypting", convert, record "encrypted".
    Run again after a crash (or over an unfinished "decrypting"), it goes on with the
    library's own key, so the passphrase must be that key's."""
    root = Path(root)
    kf = _read_keyfile(root)
    if kf is not None and kf.state == "encrypted":
        raise VaultError("the project library is already encrypted", root)
    if kf is not None:
        _keys[_k(root)] = _aesgcm(_unwrap(kf, passphrase))
        _set_state(root, "encrypting")
    else:
        check_new_passphrase(passphrase)
        with io_lock:
            if _read_keyfile(root) is not None:
                raise VaultError("the project library is already encrypted", root)
            data_key = os.urandom(32)
            root.mkdir(parents=True, exist_ok=True)
            _write_keyfile(root, _wrap(passphrase, data_key, "encrypting"))
            _keys[_k(root)] = _aesgcm(data_key)
    n = convert(root, True, skip, progress)
    _set_state(root, "encrypted")
    return n


def disable(root: Path, passphrase: str, progress: Progress | None = None) -> int:
    """Turn encryption off: check the passphrase, record "decrypting", decrypt every file,
    then remove the key file."""
    root = Path(root)
    kf = _read_keyfile(root)
    if kf is None:
        raise VaultError("the project library is not encrypted", root)
    _keys[_k(root)] = _aesgcm(_unwrap(kf, passphrase))
    _set_state(root, "decrypting")
    return _finish_decrypting(root, progress)


def _finish_decrypting(root: Path, progress: Progress | None) -> int:
    n = convert(root, False, None, progress)
    with io_lock:
        keyfile_path(root).unlink(missing_ok=True)
        _keyfile_cache.pop(_k(root), None)
    lock(root)
    return n


def finish(root: Path, skip: Callable[[Path], bool] | None = None, progress: Progress | None = None) -> int:
    """After an unlock: complete a conversion a crash interrupted, and encrypt any file left
    plain (a recording stopped just before a crash). Needs the library unlocked."""
    root = Path(root)
    kf = _read_keyfile(root)
    if kf is None:
        return 0
    if kf.state == "decrypting":
        return _finish_decrypting(root, progress)
    n = convert(root, True, skip, progress)
    _set_state(root, "encrypted")
    return n


def change_passphrase(root: Path, old: str, new: str) -> None:
    """Re-wrap the data key under a new passphrase; files are not rewritten."""
    root = Path(root)
    check_new_passphrase(new)
    with io_lock:
        kf = _read_keyfile(root)
        if kf is None:
            raise VaultError("the project library is not encrypted", root)
        data_key = _unwrap(kf, old)
        _write_keyfile(root, _wrap(new, data_key, kf.state, kf.created))
        _keys[_k(root)] = _aesgcm(data_key)


# ------------------------------------------------------------------------- decrypted views

_views_lock = threading.Lock()
_views: dict[str, tuple[tuple, Path]] = {}  # encrypted file or folder -> (its signature, plain copy)
_views_dir: Path | None = None
_views_owner: int | None = None  # open file of our views folder's owner lock, held for the process's life
VIEWS_PREFIX = "steno-views-"
OWNER_LOCK = "owner.lock"
EXIT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")
_signals_handled: set[int] = set()


def _runtime_bases() -> list[Path]:
    """Where views folders go, best first: RAM-backed when the system has it, so decrypted
    audio never lands on the disk; the temp folder only when neither exists."""
    out = []
    for cand in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm", tempfile.gettempdir()):
        if cand and os.path.isdir(cand) and os.access(cand, os.W_OK | os.X_OK) and Path(cand) not in out:
            out.append(Path(cand))
    return out


def _runtime_base() -> Path:
    bases = _runtime_bases()
    return bases[0] if bases else Path(tempfile.gettempdir())


def views_dir() -> Path:
    """This process's private (0700) folder of decrypted copies. It holds an flock on the
    folder's `owner.lock` for its whole life; the kernel drops it however the process ends,
    so a later run can tell a dead owner's folder even when its pid was reused."""
    global _views_dir, _views_owner
    if _views_dir is None or not _views_dir.is_dir():
        clean_stale_views()
        folder = Path(tempfile.mkdtemp(prefix=f"{VIEWS_PREFIX}{os.getpid()}-", dir=_runtime_base()))
        if _views_owner is not None:
            os.close(_views_owner)
        _views_owner = _hold_owner_lock(folder)
        if _views_dir is None:
            atexit.register(remove_own_views)
        _views_dir = folder
        remove_views_on_signals()
    return _views_dir


def _hold_owner_lock(folder: Path) -> int:
    """Lock a new file, then give it its name: `owner.lock` is never seen unlocked while we live."""
    new = folder / f".{OWNER_LOCK}.new"
    fd = os.open(new, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.replace(new, folder / OWNER_LOCK)
    return fd


def remove_own_views() -> None:
    """Delete this process's decrypted copies (at exit, and on a signal that ends it).
    Takes no lock: a signal handler may run while this thread holds one."""
    if _views_dir is not None:
        shutil.rmtree(_views_dir, ignore_errors=True)


def _end_without_views(signum, frame) -> None:
    remove_own_views()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # ends the process as the signal would have


def remove_views_on_signals() -> None:
    """SIGTERM and SIGHUP (and SIGINT where its action is the default) end a process without
    running atexit: first delete the decrypted copies, then end as before. Signals the
    process ignores or handles itself are left alone (SIGINT raises KeyboardInterrupt in
    Python, and atexit runs). Python sets handlers only in the main thread; elsewhere this
    does nothing, and the next call from the main thread (unlock, app start) installs them."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in EXIT_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None or sig in _signals_handled:
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _end_without_views)
                _signals_handled.add(sig)
        except (ValueError, OSError):
            continue


def clean_stale_views() -> None:
    """Remove decrypted copies left by Steno runs that were killed without a chance to clean
    up (SIGKILL, a crash, a power cut without RAM-backed storage), in every place a run may
    have put them. Called at app start, at unlock, at every conversion and before making views."""
    for base in _runtime_bases():
        for folder in base.glob(f"{VIEWS_PREFIX}*"):
            if folder != _views_dir and _owner_gone(folder):
                shutil.rmtree(folder, ignore_errors=True)


def _owner_gone(folder: Path) -> bool:
    """Whether the process that made this views folder has ended: its owner lock can be
    taken. A folder without one (made by an older Steno, or killed before it took the lock)
    falls back to whether its pid runs."""
    try:
        if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
            return False
        fd = os.open(folder / OWNER_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            pid = int(folder.name[len(VIEWS_PREFIX):].split("-")[0])
        except ValueError:
            return False
        return pid != os.getpid() and not pid_alive(pid)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_view(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def plain_view(path: Path, root: Path) -> Path:
    """`path` itself when it is plain; else a decrypted copy in the private views folder,
    made once per version of the file, for code that needs a file name (audio decoders)."""
    path = Path(path)
    if not is_encrypted_file(path):
        return path
    aead = _read_key(Path(root), path)
    st = path.stat()
    sig = (st.st_mtime_ns, st.st_size, st.st_ino)
    key = os.path.abspath(path)
    with _views_lock:
        hit = _views.get(key)
        if hit and hit[0] == sig and hit[1].is_file():
            return hit[1]
        dest = views_dir() / hashlib.sha256(f"{key}\0{sig}".encode()).hexdigest()[:24] / path.name
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "rb") as src, atomic_path(dest) as tmp:
            with open(tmp, "wb") as out:
                _decrypt_stream(src, out, aead, path)
        if hit:
            _remove_view(hit[1])
        _views[key] = (sig, dest)
        return dest


def plain_view_dir(folder: Path, root: Path) -> Path:
    """Like plain_view for a folder of files (training clips and texts for the trainer)."""
    folder = Path(folder)
    if _read_keyfile(Path(root)) is None:
        return folder  # a plain library: nothing to decrypt (and the trainer tab asks often)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    sig = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    key = os.path.abspath(folder)
    with _views_lock:
        hit = _views.get(key)
        if hit and hit[0] == sig and hit[1].is_dir():
            return hit[1]
    if not any(is_encrypted_file(p) for p in files):
        return folder
    aead = _read_key(Path(root), folder)
    with _views_lock:
        dest = views_dir() / hashlib.sha256(f"{key}\0{sig}".encode()).hexdigest()[:24] / folder.name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(mode=0o700, parents=True)
        for p in files:
            with open(p, "rb") as src, open(dest / p.name, "wb") as out:
                if is_encrypted_file(p):
                    _decrypt_stream(src, out, aead, p)
                else:
                    shutil.copyfileobj(src, out)
        if hit:
            _remove_view(hit[1])
        _views[key] = (sig, dest)
        return dest


def drop_views(under: Path) -> None:
    """Delete the decrypted copies of files under `under` (a deleted project, a locked library)."""
    prefix = os.path.abspath(under) + os.sep
    with _views_lock:
        for key in [k for k in _views if k.startswith(prefix)]:
            _remove_view(_views.pop(key)[1])
