"""Unpacking archives that may be hostile: N-MNIST's zip files and tonic's datasets' zip
and tar files (downloaded, or placed by hand where a failed download says to).

Only regular files and folders are unpacked, each to a path inside the destination:
a member whose name is absolute or climbs out (`..`), a symbolic or hard link, a
device, a FIFO or anything else is refused by name before it is written. The number of
files, each file's size and the total are bounded by the dataset's `Limits`, checked
against what the archive declares and again while each file streams out (a forged
header cannot write more), so a small archive cannot fill the disk. Python's own
extraction filters differ between versions; this code is the same on all of them.
The destination is a fresh folder the caller renames into place when all went well.
"""

import gzip
import lzma
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from snnflow import SnnflowError

CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Limits:
    """What one archive of a dataset may hold, and what the dataset is (for the error
    lines: "N-MNIST's recordings are a few kB and a split unpacks to about 1.3 GB")."""
    max_members: int
    max_member_bytes: int
    max_total_bytes: int
    dataset: str
    expected: str


def too_large(archive, limits, what):
    return SnnflowError(f"{archive}: {what}; {limits.expected} - this is not {limits.dataset} "
                        "archive: delete it and download again")


def refused(archive, member, what, limits):
    return SnnflowError(f"{archive}: {member!r} is {what}; {limits.dataset} archive holds "
                        "only files and folders inside itself - delete it and download again")


def relative_path(archive, name, limits):
    """The member's path below the destination, or a refusal: absolute names, drive
    letters, backslashes and `..` would write elsewhere."""
    parts = PurePosixPath(name).parts
    if (not name or "\x00" in name or "\\" in name or name.startswith("/")
            or (parts and parts[0].endswith(":")) or ".." in parts):
        raise refused(archive, name, "a path outside the folder it unpacks into", limits)
    kept = [part for part in parts if part != "."]
    if not kept:
        raise refused(archive, name, "a member without a name", limits)
    return Path(*kept)


def unpack(archive, dest, limits, target_of=None):
    """Unpack the zip or tar (gzip, bzip2 or xz) `archive` into the existing folder
    `dest`. `target_of(path)` maps a member's safe relative path to where it goes below
    `dest` (None: skipped; it may raise to refuse a layout); by default, where it says.
    Returns the number of files written."""
    archive = Path(archive)
    target_of = target_of or (lambda path: path)
    if zipfile.is_zipfile(archive):
        return _unpack_zip(archive, Path(dest), limits, target_of)
    if tarfile.is_tarfile(archive):
        return _unpack_tar(archive, Path(dest), limits, target_of)
    raise SnnflowError(f"{archive}: neither a zip nor a tar archive (or a damaged one) - "
                       "delete it and download again")


def _zip_kind(info):
    """'file', 'folder' or what else the member's Unix mode says it is."""
    mode = info.external_attr >> 16
    if info.is_dir():
        return "folder"
    if stat.S_IFMT(mode) in (0, stat.S_IFREG):  # 0: made where modes are not recorded
        return "file"
    return _kind_of_mode(mode)


def _kind_of_mode(mode):
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _unpack_zip(archive, dest, limits, target_of):
    try:
        with zipfile.ZipFile(archive) as zf:
            members = []
            for info in zf.infolist():
                path = relative_path(archive, info.filename, limits)
                kind = _zip_kind(info)
                if kind not in ("file", "folder"):
                    raise refused(archive, info.filename, kind, limits)
                target = target_of(path) if kind == "file" else None
                if target is not None:
                    members.append((info, target))
            _check_declared(archive, limits, [(info.filename, info.file_size)
                                              for info, _ in members])
            for info, target in members:
                with zf.open(info) as source:
                    _write_bounded(source, dest, target, info.filename, info.file_size,
                                   archive, limits)
            return len(members)
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        if "CRC" in str(err):
            raise SnnflowError(f"{archive}: a member fails its CRC check ({err}) - delete the "
                               "archive and download again") from None
        raise SnnflowError(f"{archive}: not a complete zip archive ({err}) - delete it and "
                           "download again") from None


def _unpack_tar(archive, dest, limits, target_of):
    """A tar is read as a stream, member by member: its listing is known only at its end,
    so the count and the total are checked as it goes."""
    count = total = 0
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tar:
                path = relative_path(archive, member.name, limits)
                if member.isdir():
                    continue
                if not member.isreg():
                    kind = ("a hard link" if member.islnk() else
                            "a symbolic link" if member.issym() else
                            "a device" if member.ischr() or member.isblk() else
                            "a FIFO" if member.isfifo() else "not a regular file")
                    raise refused(archive, member.name, kind, limits)
                target = target_of(path)
                if target is None:
                    continue
                count += 1
                total += member.size
                _check_running(archive, limits, member.name, member.size, count, total)
                _write_bounded(tar.extractfile(member), dest, target, member.name,
                               member.size, archive, limits)
        return count
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError,
            OSError) as err:
        if type(err) is OSError and err.errno is not None:
            raise  # a full disk is the job's to report, not the archive's
        raise SnnflowError(f"{archive}: not a complete tar archive ({err}) - delete it and "
                           "download again") from None


def _check_declared(archive, limits, sizes):
    """Refuse a listing that declares more than the dataset can be."""
    if len(sizes) > limits.max_members:
        raise too_large(archive, limits, f"{len(sizes)} files, more than {limits.max_members}")
    if not sizes:
        return
    name, largest = max(sizes, key=lambda item: item[1])
    if largest > limits.max_member_bytes:
        raise too_large(archive, limits, f"{name} unpacks to {largest} bytes, more than "
                                         f"{limits.max_member_bytes}")
    total = sum(size for _, size in sizes)
    if total > limits.max_total_bytes:
        raise too_large(archive, limits, f"its files unpack to {total} bytes, more than "
                                         f"{limits.max_total_bytes}")


def _check_running(archive, limits, name, size, count, total):
    if count > limits.max_members:
        raise too_large(archive, limits, f"more than {limits.max_members} files")
    if size > limits.max_member_bytes:
        raise too_large(archive, limits, f"{name} unpacks to {size} bytes, more than "
                                         f"{limits.max_member_bytes}")
    if total > limits.max_total_bytes:
        raise too_large(archive, limits, f"its files unpack to more than "
                                         f"{limits.max_total_bytes} bytes")


def _write_bounded(source, dest, target, name, declared, archive, limits):
    """Stream one member to dest/target, never writing more than it declares (nor than
    the member cap); a file already there (two members of one name) is refused."""
    limit = min(declared, limits.max_member_bytes)
    path = dest / target
    written = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = open(path, "xb")
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise refused(archive, name, "a second member of that name (a file or folder)",
                      limits) from None
    with out:
        while chunk := source.read(CHUNK_BYTES):
            written += len(chunk)
            if written > limit:
                raise too_large(archive, limits, f"{name} unpacks to more than the "
                                                 f"{declared} bytes it declares")
            out.write(chunk)
