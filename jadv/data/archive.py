"""Safe reading and extraction of tar archives: regular files and folders only, no path traversal,
no links."""
from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2")


def is_archive(path) -> bool:
    return os.fspath(path).lower().endswith(ARCHIVE_SUFFIXES)


def _unsafe(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` is unsafe, or ``None``.

    Only regular files and folders are allowed. Links are refused outright instead of checked: a
    link's target read as text says nothing about where it resolves once earlier links in the
    archive exist on disk (a link ``d/up -> ..`` makes ``d/up/x -> ../..`` look inside and point
    outside), and ``tarfile``'s ``filter="data"``, which resolves them, is bypassed before Python
    3.11.13 / 3.12.11 by chains of links whose resolved path exceeds PATH_MAX (CVE-2025-4517).
    Dataset archives need no links.
    """
    name = member.name
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "'..' path component"
    if member.issym() or member.islnk():
        target = member.linkname if len(member.linkname) <= 60 else member.linkname[:57] + "..."
        kind = "symbolic" if member.issym() else "hard"
        return f"{kind} link to {target!r}; dataset archives must not contain links"
    if not (member.isfile() or member.isdir()):
        return "not a regular file or folder (device, fifo or other special member)"
    return None


def check_member(member: tarfile.TarInfo, archive) -> None:
    """Raise ``ValueError`` if a tar member could write or point outside the destination."""
    why = _unsafe(member)
    if why is not None:
        raise ValueError(f"{os.fspath(archive)}: refusing unsafe archive member {member.name!r} ({why})")


def iter_files(archive):
    """Yield ``(member_name, bytes)`` for each regular file of a tar archive, in archive order.

    The archive is read as a stream (any compression ``tarfile`` knows), nothing is written to
    disk, and every member is checked first: absolute paths, ``..`` components, links and special
    members raise ``ValueError`` naming the member.
    """
    try:
        with tarfile.open(archive, mode="r|*") as tf:
            for member in tf:
                check_member(member, archive)
                if not member.isfile():
                    continue
                f = tf.extractfile(member)
                yield posixpath.normpath(member.name), f.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{os.fspath(archive)}: cannot read tar archive ({e})") from None


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike) -> str:
    """Extract a tar archive into ``dest`` without writing outside it.

    Every member is checked before anything is written (absolute paths, ``..`` components, any
    symbolic or hard link, and device files raise ``ValueError`` naming the member), then the
    archive is extracted with ``tarfile``'s ``filter="data"`` as a second line. Extraction goes to a temporary folder beside ``dest`` that is
    renamed into place, so a concurrent or interrupted extraction never leaves a half-written
    ``dest``. If ``dest`` already exists it is returned as is.

    Returns:
      ``dest`` as a string.
    """
    dest = os.fspath(dest)
    if os.path.isdir(dest):
        return dest
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    try:
        with tarfile.open(archive, mode="r:*") as tf:
            members = tf.getmembers()
            for m in members:
                check_member(m, archive)
            tmp = tempfile.mkdtemp(prefix=".extract-", dir=parent)
            try:
                tf.extractall(tmp, members=members, filter="data")
                try:
                    os.rename(tmp, dest)
                except OSError:
                    if not os.path.isdir(dest):
                        raise
                    shutil.rmtree(tmp, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except tarfile.TarError as e:
        raise ValueError(f"{os.fspath(archive)}: cannot extract tar archive ({e})") from None
    return dest
