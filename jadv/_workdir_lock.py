"""One process per folder: a claim file that names its holder (pid, host, start time).

Used by the training loop (``<workdir>/train.lock``) and by ``experiments/reproduce.py``
(``<study>/running.json``). Standard library only, so a test can load it in a bare subprocess.

How a claim is made, kept and given up:

* **Create.** The claim (JSON: ``pid``, ``host``, ``started``, ``token``) is written complete to a
  unique temporary file in the same folder and hard-linked to the claim's name with
  ``os.link``, which fails if the name exists: like ``os.open(O_CREAT | O_EXCL)``, exactly one
  process wins, and the claim never exists half-written (a reader never sees an empty claim). Where
  the file system has no hard links, ``os.open(O_CREAT | O_EXCL)`` is used instead.
* **Respect.** A claim from another host, or from a live process on this host, stands.
* **Take over.** A claim whose process is gone (same host), or that cannot be read, is stale.
  Taking it over is atomic: takeovers are serialised by an exclusive ``fcntl.flock`` on
  ``<name>.takeover`` (released by the kernel if the process dies, so it can never go stale
  itself); under it the claim is read again and, only if it is still stale, replaced in one step
  by ``os.replace`` of a complete new claim. Every other change to the claim is either a create
  (fails while any claim exists) or a release by the live holder, so two processes can never both
  take over one stale claim (the old remove-then-create could: both remove, both create).
* **Release.** Only the holder removes its claim (pid and host checked, and the token of this
  acquisition when the process has one).

The liveness test is ``os.kill(pid, 0)``; a pid reused by an unrelated live process keeps the
claim until that process ends (remove the file by hand if you are sure nothing runs there).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
import uuid

try:  # POSIX; elsewhere takeovers are serialised by an O_EXCL file (see _takeover_mutex)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

# claims made by this process: path -> token (so a second claim of a folder by this process can be
# told from a claim left by an earlier process that had the same pid)
_HELD: dict[str, str] = {}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def read_claim(path: str) -> dict | None:
    """The claim at ``path``; ``None`` when it cannot be read or lacks pid/host. Raises
    ``FileNotFoundError`` when there is none."""
    try:
        with open(path) as f:
            record = json.load(f)
        record["pid"], record["host"] = int(record["pid"]), str(record["host"])
        return record
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _key(directory: str, name: str) -> str:
    """The claim's path, spelled one way (the key of ``_HELD``)."""
    return os.path.join(os.path.realpath(directory), name)


def _identity() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _new_claim() -> dict:
    return {**_identity(), "started": time.time(), "token": uuid.uuid4().hex}


def _write_temp(directory: str, name: str, record: dict) -> str:
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _create(directory: str, name: str, record: dict) -> bool:
    """Create the claim if none exists (atomic); whether this call created it."""
    path = os.path.join(directory, name)
    tmp = _write_temp(directory, name, record)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as err:  # no hard links here: exclusive create, then write
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record))
        return True
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)


@contextlib.contextmanager
def _takeover_mutex(directory: str, name: str):
    """Serialise takeovers of one claim (between processes of this host)."""
    path = os.path.join(directory, f"{name}.takeover")
    if fcntl is not None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock
        return
    for _ in range(600):  # pragma: no cover - non-POSIX fallback
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - os.path.getmtime(path) > 60:
                    os.remove(path)
            time.sleep(0.1)
    else:  # pragma: no cover
        raise RuntimeError(f"could not take over {os.path.join(directory, name)}: {path} is held")
    try:
        yield
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.remove(path)


def _verdict(path: str, holder: dict | None, reentrant: bool) -> str:
    """'mine', 'held' (stands) or 'stale' for the claim ``holder`` read from ``path``."""
    if holder is None:
        return "stale"                                   # unreadable: never a half-written claim
    me = _identity()
    if holder["host"] != me["host"]:
        return "held"                                    # another machine's: cannot check, respect
    if holder["pid"] == me["pid"]:
        if reentrant:
            return "mine"
        # this process: held now (a second claim in the same process) or left by an earlier
        # process that had the same pid (stale)
        return "held" if _HELD.get(path) == holder.get("token") and path in _HELD else "stale"
    return "held" if pid_alive(holder["pid"]) else "stale"


def claim(directory: str, name: str, *, reentrant: bool = True) -> dict | None:
    """Claim ``directory`` for this process by creating ``directory/name``.

    Returns ``None`` when this process holds the claim now, else the record of the holder (a live
    process on this host, or any process on another host). ``reentrant``: whether a claim already
    held by this process counts as held by the caller (True) or as a holder (False).
    """
    os.makedirs(directory, exist_ok=True)
    path = _key(directory, name)
    for _ in range(20):
        record = _new_claim()
        if _create(directory, name, record):
            _HELD[path] = record["token"]
            return None
        try:
            holder = read_claim(path)
        except FileNotFoundError:
            continue                                     # released meanwhile: try again
        verdict = _verdict(path, holder, reentrant)
        if verdict == "mine":
            return None
        if verdict == "held":
            return holder
        with _takeover_mutex(directory, name):
            try:                                         # read again: another process may have won
                holder = read_claim(path)
            except FileNotFoundError:
                continue
            verdict = _verdict(path, holder, reentrant)
            if verdict == "mine":
                return None
            if verdict == "held":
                return holder
            tmp = _write_temp(directory, name, record)
            try:
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(tmp)
                raise
            _HELD[path] = record["token"]
            return None
    raise RuntimeError(f"could not claim {directory}: {path} keeps appearing and disappearing")


def release(directory: str, name: str) -> bool:
    """Remove this process's claim ``directory/name`` (never another process's); whether removed."""
    path = _key(directory, name)
    token = _HELD.pop(path, None)
    try:
        holder = read_claim(path)
    except FileNotFoundError:
        return False
    if holder is None or holder["pid"] != os.getpid() or holder["host"] != socket.gethostname():
        return False
    if token is not None and holder.get("token") not in (None, token):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    return True


def describe(holder: dict) -> str:
    started = holder.get("started")
    when = (time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(float(started)))
            if isinstance(started, (int, float)) and started > 0 else "")
    return f"process {holder.get('pid')} on host {holder.get('host')}{when}"


@contextlib.contextmanager
def hold(directory: str, name: str, *, what: str = "a run"):
    """Hold ``directory/name`` for the ``with`` block (released on exceptions too); a
    ``RuntimeError`` naming the folder and the holder's pid and host if another process holds it."""
    holder = claim(directory, name, reentrant=False)
    if holder is not None:
        raise RuntimeError(
            f"{directory} is in use: {describe(holder)} holds {os.path.join(directory, name)} "
            f"({what}). Two runs on one folder would corrupt it: wait for that process to finish, "
            f"or use another folder. If no such process exists any more, delete the file.")
    try:
        yield
    finally:
        release(directory, name)
