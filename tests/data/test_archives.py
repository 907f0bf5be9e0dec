"""Unpacking archives that may be hostile (snnflow.data.archives), for every dataset's
archives: N-MNIST's zip files, DVS Gesture's and Poker-DVS's tar.gz files, N-Caltech101's
and CIFAR10-DVS's zip files and the archives inside them. Nothing is written outside the
folder being unpacked, no link, device or FIFO is made, and a small archive cannot
expand to gigabytes; each refusal is one line naming the archive and the member."""

import io
import stat
import tarfile
import zipfile

import pytest

from snnflow import SnnflowError
from snnflow.data import archives, download, tonic_datasets

TAR_DATASETS = {"DVSGesture": "ibmGestureTrain", "POKERDVS": "pips_train"}
ZIP_DATASETS = {"NCALTECH101": "Caltech101", "CIFAR10DVS": "airplane"}


def tar_with(path, *members):
    """A tar.gz of (TarInfo, bytes or None) members."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_file(name, data=b"events"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name, kind, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def zip_with(path, *members):
    """A zip of (name, bytes, unix mode or None) members."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


HOSTILE_TAR = {
    "climbs out": (tar_file("ibmGestureTrain/../../outside.txt"), "a path outside"),
    "absolute": (tar_file("{absolute}"), "a path outside"),
    "symbolic link": (tar_special("ibmGestureTrain/link", tarfile.SYMTYPE, "/etc"),
                      "a symbolic link"),
    "hard link": (tar_special("ibmGestureTrain/hard", tarfile.LNKTYPE, "/etc/passwd"),
                  "a hard link"),
    "device": (tar_special("ibmGestureTrain/null", tarfile.CHRTYPE), "a device"),
    "fifo": (tar_special("ibmGestureTrain/pipe", tarfile.FIFOTYPE), "a FIFO"),
}


@pytest.mark.parametrize("dataset", sorted(TAR_DATASETS))
@pytest.mark.parametrize("case", sorted(HOSTILE_TAR))
def test_a_tar_member_that_is_no_file_inside_the_folder_is_refused(tmp_path, dataset, case):
    member, words = HOSTILE_TAR[case]
    absolute = tmp_path / "absolute.txt"
    if member[0].name == "{absolute}":
        member = tar_file(str(absolute))
    good = tar_file(f"{TAR_DATASETS[dataset]}/user01/0.npy")
    archive = tar_with(tmp_path / "hostile.tar.gz", good, member)
    out = tmp_path / "project" / "raw" / dataset
    with pytest.raises(SnnflowError, match=words) as refused:
        tonic_datasets.unpack(dataset, [archive], out)
    assert str(archive) in str(refused.value) and "\n" not in str(refused.value)
    assert member[0].name in str(refused.value)
    assert not out.exists() and not (tmp_path / "project" / "raw" / f"{dataset}.partial").exists()
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "project" / "outside.txt").exists()
    assert not absolute.exists()


HOSTILE_ZIP = {
    "climbs out": (("Caltech101/../../outside.txt", b"x", None), "a path outside"),
    "absolute": (("{absolute}", b"x", None), "a path outside"),
    "backslashes": (("..\\..\\outside.txt", b"x", None), "a path outside"),
    "symbolic link": (("Caltech101/link", b"/etc", stat.S_IFLNK | 0o777), "a symbolic link"),
    "device": (("Caltech101/null", b"", stat.S_IFCHR | 0o666), "a device"),
    "fifo": (("Caltech101/pipe", b"", stat.S_IFIFO | 0o666), "a FIFO"),
}


@pytest.mark.parametrize("dataset", sorted(ZIP_DATASETS))
@pytest.mark.parametrize("case", sorted(HOSTILE_ZIP))
def test_a_zip_member_that_is_no_file_inside_the_folder_is_refused(tmp_path, dataset, case):
    member, words = HOSTILE_ZIP[case]
    absolute = tmp_path / "absolute.txt"
    if member[0] == "{absolute}":
        member = (str(absolute), *member[1:])
    archive = zip_with(tmp_path / "hostile.zip", (f"{ZIP_DATASETS[dataset]}/a.bin", b"e", None),
                       member)
    out = tmp_path / "project" / "raw" / dataset
    with pytest.raises(SnnflowError, match=words) as refused:
        tonic_datasets.unpack(dataset, [archive], out)
    assert member[0] in str(refused.value) or repr(member[0]) in str(refused.value)
    assert not out.exists() and not (tmp_path / "outside.txt").exists()
    assert not absolute.exists()


def test_an_archive_inside_an_archive_is_checked_the_same_way(tmp_path):
    """N-Caltech101's download holds Caltech101.zip, which tonic unpacks in turn."""
    inner = zip_with(tmp_path / "Caltech101.zip",
                     ("Caltech101/../../../outside.txt", b"x", None))
    outer = zip_with(tmp_path / "N-Caltech101-archive.zip",
                     ("Caltech101.zip", inner.read_bytes(), None))
    out = tmp_path / "raw" / "NCALTECH101"
    with pytest.raises(SnnflowError, match="Caltech101.zip: 'Caltech101/../../../outside.txt' "
                                           "is a path outside"):
        tonic_datasets.unpack("NCALTECH101", [outer], out)
    assert not out.exists() and not (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_small_archive_that_expands_to_gigabytes_is_refused(tmp_path, monkeypatch, kind):
    """A few kB of zeros that would unpack to far more than tonic's archives do: refused
    by the listing (zip) or while it streams (tar), and nothing of it is left."""
    monkeypatch.setattr(tonic_datasets, "EXPANSION_ALLOWANCE_BYTES", 1 << 20)
    big = bytes(4 << 20)
    if kind == "tar":
        archive = tar_with(tmp_path / "ibmGestureTrain.tar.gz",
                           tar_file("ibmGestureTrain/user01/0.npy", big))
        dataset = "DVSGesture"
    else:
        archive = zip_with(tmp_path / "CIFAR10DVS.zip", ("airplane.zip", big, None))
        dataset = "CIFAR10DVS"
    assert archive.stat().st_size < 64 << 10
    out = tmp_path / "raw" / dataset
    with pytest.raises(SnnflowError, match="unpack.* to .*more than") as refused:
        tonic_datasets.unpack(dataset, [archive], out)
    assert f"{dataset}'s archives hold at most" in str(refused.value)
    assert not out.exists() and not (tmp_path / "raw" / f"{dataset}.partial").exists()


def test_too_many_members_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tonic_datasets, "MAX_ARCHIVE_MEMBERS", 3)
    archive = tar_with(tmp_path / "pips_train.tar.gz",
                       *[tar_file(f"pips_train/cl/{i}.npy") for i in range(5)])
    with pytest.raises(SnnflowError, match="more than 3 files"):
        tonic_datasets.unpack("POKERDVS", [archive], tmp_path / "raw" / "POKERDVS")


def test_a_tar_member_that_streams_past_its_declared_size_is_cut_off(tmp_path):
    limits = archives.Limits(10, 100, 1000, "a test", "test archives are small")
    archive = tar_with(tmp_path / "a.tar.gz", tar_file("a/b.npy", bytes(500)))
    with pytest.raises(SnnflowError, match="a/b.npy unpacks to 500 bytes, more than 100"):
        archives.unpack(archive, tmp_path, limits)
    assert not (tmp_path / "a" / "b.npy").exists()


def test_two_members_of_one_name_cannot_overwrite_each_other(tmp_path):
    limits = archives.Limits(10, 100, 1000, "a test", "test archives are small")
    archive = tar_with(tmp_path / "a.tar.gz", tar_file("a/b.npy", b"first"),
                       tar_file("a/./b.npy", b"second"))
    (tmp_path / "out").mkdir()
    with pytest.raises(SnnflowError, match="a second member of that name"):
        archives.unpack(archive, tmp_path / "out", limits)
    assert (tmp_path / "out" / "a" / "b.npy").read_bytes() == b"first"


def test_good_archives_unpack_as_before(tmp_path):
    archive = tar_with(tmp_path / "pips_train.tar.gz", tar_file("pips_train/cl/0.npy", b"0"),
                       tar_file("./pips_train/he/1.npy", b"1"))
    tonic_datasets.unpack("POKERDVS", [archive], tmp_path / "raw" / "POKERDVS")
    assert sorted(p.relative_to(tmp_path / "raw").as_posix()
                  for p in (tmp_path / "raw").rglob("*.npy")) == [
        "POKERDVS/pips_train/cl/0.npy", "POKERDVS/pips_train/he/1.npy"]


@pytest.mark.parametrize("case", ["climbs out", "symbolic link", "device"])
def test_nmnist_archives_are_checked_by_the_same_code(tmp_path, case):
    name, data, mode = {
        "climbs out": ("Train/1/../../../outside.bin", b"x", None),
        "symbolic link": ("Train/1/link.bin", b"/etc/passwd", stat.S_IFLNK | 0o777),
        "device": ("Train/1/null.bin", b"", stat.S_IFCHR | 0o666)}[case]
    archive = zip_with(tmp_path / "train.zip", ("Train/0/00001.bin", bytes(5), None),
                       (name, data, mode))
    with pytest.raises(SnnflowError, match=f"train.zip: '{name}' is "):
        download.unpack_split(archive, tmp_path / "Train", "Train")
    assert not (tmp_path / "Train").exists() and not (tmp_path / "outside.bin").exists()
