"""`_distinfo` against importlib.metadata (the oracle) on the real installed distributions."""

import os
import sys
from importlib import metadata

import pytest

from libbroker import _cache, _distinfo
from libbroker._providers import search_path


def _oracle_dists() -> list[metadata.Distribution]:
    return list(metadata.distributions(path=search_path()))


def test_same_distributions_in_the_same_order() -> None:
    ours = [info_dir for d in search_path() for _, info_dir, _, _ in _distinfo.distributions(d)]
    theirs = [str(d._path) for d in _oracle_dists()]
    assert len(theirs) > 10  # the venv's own distributions
    assert [os.path.realpath(p) for p in ours] == [os.path.realpath(p) for p in theirs]


def test_name_and_version_match_metadata() -> None:
    for dist in _oracle_dists():
        name, version = _distinfo.name_and_version(str(dist._path))
        assert (name, version) == (dist.metadata["Name"], dist.version), dist


def test_entry_points_of_every_group_match() -> None:
    checked = 0
    for dist in _oracle_dists():
        path = os.path.join(str(dist._path), "entry_points.txt")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for group in {ep.group for ep in dist.entry_points}:
            expected = [(ep.name, ep.value) for ep in dist.entry_points if ep.group == group]
            assert _distinfo.parse_entry_points(text, group) == expected, (dist, group)
            checked += 1
    assert checked > 5


def test_record_paths_match_files() -> None:
    checked = 0
    for dist in _oracle_dists():
        files = dist.files
        ours = _distinfo.record_paths(str(dist._path))
        if not os.path.isfile(os.path.join(str(dist._path), "RECORD")):
            continue
        assert files is not None and ours is not None
        assert ours == [f.as_posix() for f in files], dist
        checked += 1
    assert checked > 10


def test_quoted_record_fields() -> None:
    assert _distinfo._first_field('"a,b/c ""d"".so",sha256=x,1') == 'a,b/c "d".so'
    assert _distinfo.posix_normal("./a//b/") == "a/b"


@pytest.mark.parametrize("name", ["Foo.Bar", "foo__bar", "FOO-bar.baz", "a"])
def test_normalize_matches_importlib(name: str) -> None:
    assert _distinfo.normalize(name) == metadata.Prepared.normalize(name)  # type: ignore[attr-defined]


def test_find_distribution_matches_discover() -> None:
    for dist in _oracle_dists()[:30]:
        name = dist.metadata["Name"]
        first = next(iter(metadata.Distribution.discover(name=name, path=search_path())))
        found = _distinfo.find_distribution(name, search_path())
        assert found is not None
        assert os.path.realpath(found) == os.path.realpath(str(first._path)), name


def test_a_new_distribution_rescans_only_its_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    site.mkdir()
    for i in range(3):
        info = site / f"d{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: d{i}\nVersion: 1.0\n\n")
        (info / "entry_points.txt").write_text(f"[libbroker.providers]\nlib{i} = pkg{i}\n")
    first = _distinfo.distributions(str(site))
    assert sorted(r[3] for r in first) == [[(f"lib{i}", f"pkg{i}")] for i in range(3)]
    _distinfo.flush()
    _distinfo._memo.clear()
    _distinfo._disk = None
    read: list[str] = []
    real = _distinfo._record_of
    monkeypatch.setattr(_distinfo, "_record_of", lambda d: (read.append(d), real(d))[1])
    assert _distinfo.distributions(str(site)) == first and read == []  # from the disk cache
    new = site / "d9-1.0.dist-info"
    new.mkdir()
    (new / "entry_points.txt").write_text("[libbroker.providers]\nlib9 = pkg9\n")
    again = _distinfo.distributions(str(site))
    assert read == [str(new)]  # only the new distribution was read
    assert [r[3] for r in again if r[1] == str(new)] == [[("lib9", "pkg9")]]
    # An entry_points.txt edited in place (no directory changes) is re-read by its identity.
    ep = site / "d0-1.0.dist-info" / "entry_points.txt"
    ep.write_text("[libbroker.providers]\nother = pkg0\n")
    os.utime(ep, ns=(1, 1))
    _distinfo._checked.clear()  # identities are rechecked once a second (`_RECHECK_SECONDS`)
    assert [r[3] for r in _distinfo.distributions(str(site)) if r[0] == "d0"] == [[("other", "pkg0")]]
    assert _cache.dir_stamp(str(site)) != -1 and sys.path  # the stamps used exist
