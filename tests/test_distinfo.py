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


# --- metadata files that are not regular files (review 2, F3/F4) ----------------------------

_NOT_REGULAR = ["fifo", "stdin", "directory", "dangling", "loop"]


def _plant(path, kind: str) -> None:
    """Something that is not a regular file at *path*: a FIFO (open(O_RDONLY) blocks until a
    writer comes), a symlink to /dev/stdin (a pipe from the parent that never writes), a directory."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "stdin":
        os.symlink("/dev/stdin", path)
    elif kind == "dangling":  # review4 R4-2: there, and unreadable: refused, not "absent"
        os.symlink("/nonexistent/metadata", path)
    elif kind == "loop":
        os.symlink(os.path.basename(path), path)
    else:
        os.mkdir(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
@pytest.mark.parametrize("kind", _NOT_REGULAR)
def test_non_regular_metadata_files_are_skipped_without_blocking(tmp_path, kind: str) -> None:
    import subprocess

    site = tmp_path / "site"
    for name in ("entry_points.txt", "METADATA", "PKG-INFO", "RECORD"):
        info = site / f"evil_{name.replace('.', '_').replace('-', '_').lower()}-1.0.dist-info"
        info.mkdir(parents=True)
        _plant(info / name, kind)
    good = site / "good-1.0.dist-info"
    good.mkdir()
    (good / "METADATA").write_text("Metadata-Version: 2.1\nName: good\nVersion: 1.0\n\n")
    (good / "entry_points.txt").write_text("[libbroker.providers]\ngoodlib = goodpkg\n")
    code = f"""
import os, json
from libbroker import _distinfo
site = {str(site)!r}
out = {{"eps": _distinfo.provider_entry_points([site]), "heads": {{}}, "records": {{}}, "problems": {{}}}}
import sys
sys.path.insert(0, site)
from libbroker import _providers
refused = []
out["searched"] = _providers.provider_files("goodlib", [], refused)[1]
out["refused"] = refused
for child in sorted(os.listdir(site)):
    info = os.path.join(site, child)
    out["heads"][child] = _distinfo.name_and_version(info)
    out["problems"][child] = _distinfo.metadata_problem(info)
    try:
        out["records"][child] = _distinfo.record_paths(info)
    except _distinfo.MetadataError as exc:
        out["records"][child] = "error: " + str(exc)
print(json.dumps(out))
"""
    # stdin: a pipe nobody writes to, held open by this process (the reader would wait forever).
    r, w = os.pipe()
    try:
        done = subprocess.run([sys.executable, "-c", code], stdin=r, capture_output=True, text=True,
                              timeout=60, env={**os.environ, "LIBBROKER_CACHE_DIR": str(tmp_path / "c")})
    finally:
        os.close(r)
        os.close(w)
    assert done.returncode == 0, done.stderr
    import json

    out = json.loads(done.stdout)
    # An unreadable entry_points.txt provides nothing it could name, but is not "none":
    # a U+FFFD line, so every search refuses that distribution by name (review3 F5).
    evil_ep = str(site / "evil_entry_points_txt-1.0.dist-info")
    assert sorted(map(tuple, out["eps"])) == sorted([(evil_ep, "\ufffd", ""), (str(good), "goodlib", "goodpkg")])
    [(path, origin, reason)] = [r for r in out["refused"] if "entry_points" in r[0]]
    assert path == evil_ep + "/entry_points.txt" and any(r in reason for r in (
        "is not a regular file", "symbolic link that cannot be followed", "dangling symbolic link"))
    assert origin == "provider:evil_entry_points_txt"
    assert any("evil_entry_points_txt" in line and "(ignored)" in line for line in out["searched"])
    assert out["heads"]["good-1.0.dist-info"] == ["good", "1.0"]
    assert out["heads"]["evil_metadata-1.0.dist-info"] == [None, None]
    assert out["heads"]["evil_pkg_info-1.0.dist-info"] == [None, None]
    record = out["records"]["evil_record-1.0.dist-info"]
    unfollowable = ("symbolic link that cannot be followed", "dangling symbolic link",
                    "cannot be examined: Too many levels of symbolic links")
    reasons = ("is not a regular file", *unfollowable) if kind in ("dangling", "loop") else (
        "is not a regular file",)
    assert record.startswith("error: ") and any(r in record for r in reasons), record
    assert "fix: reinstall evil_record" in record
    assert out["records"]["good-1.0.dist-info"] is None  # absent, not an error
    # A provider whose METADATA or entry_points.txt is such a file is refused by name, not skipped.
    assert out["problems"]["good-1.0.dist-info"] is None
    for child in ("evil_metadata", "evil_entry_points_txt"):
        path, why = out["problems"][f"{child}-1.0.dist-info"]
        assert path.endswith(("METADATA", "entry_points.txt")) and any(r in why for r in reasons), why


def test_unreadable_entry_points_keep_an_exact_identity(tmp_path, monkeypatch) -> None:
    # A directory (a FIFO would hang this process were the reader wrong: the subprocess
    # test above covers FIFOs).
    monkeypatch.setenv("LIBBROKER_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "site"
    info = site / "d-1.0.dist-info"
    info.mkdir(parents=True)
    ep = info / "entry_points.txt"
    ep.mkdir()
    [record] = _distinfo.distributions(str(site))
    # Stamped with what is there, so the next check does not reopen it...
    assert record[2] == _cache.identity(str(ep)) and record[3] == [(_distinfo._UNREADABLE, "")]
    read: list[str] = []
    real = _distinfo._record_of
    monkeypatch.setattr(_distinfo, "_record_of", lambda d: (read.append(d), real(d))[1])
    _distinfo._checked.clear()
    assert _distinfo.distributions(str(site)) == [record] and read == []
    # ...and a regular file put in its place is read.
    ep.rmdir()
    ep.write_text("[libbroker.providers]\nlib = pkg\n")
    _distinfo._checked.clear()
    assert [r[3] for r in _distinfo.distributions(str(site))] == [[("lib", "pkg")]]
    assert read == [str(info)]


def test_over_bound_metadata_is_refused(tmp_path) -> None:
    path = tmp_path / "x-1.0.dist-info" / "RECORD"
    path.parent.mkdir()
    with open(path, "wb") as f:
        f.truncate(_distinfo._MAX_TEXT + 1)  # sparse: no disk used
    with pytest.raises(_distinfo.MetadataError, match="is over 4194304 bytes"):
        _distinfo.record_paths(str(path.parent))


def test_record_that_is_not_utf8_names_the_byte_and_its_offset(tmp_path) -> None:
    info = tmp_path / "x-1.0.dist-info"
    info.mkdir()
    good = b"x/__init__.py,,\nx-1.0.dist-info/RECORD,,\n"
    (info / "RECORD").write_bytes(good + b"\xff\xfe\x00garbage\n")
    with pytest.raises(_distinfo.MetadataError) as err:
        _distinfo.record_paths(str(info))
    message = str(err.value)
    assert f"RECORD' is not UTF-8: byte 0xff at offset {len(good)}" in message
    assert "fix: reinstall x with pip" in message
    # importlib.metadata (the oracle) cannot read it either.
    with pytest.raises(UnicodeDecodeError):
        metadata.PathDistribution(info).files  # noqa: B018


# --- METADATA and entry_points.txt that are not UTF-8 ----------------------------------------


@pytest.fixture(scope="module")
def wrapped_site(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real provider wheel made by ``libbroker wrap`` from a gcc-built library, installed
    by pip into a directory (the pristine copy; tests copy it before damaging it)."""
    import shutil
    import subprocess

    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the test library")
    base = tmp_path_factory.mktemp("wrapped")
    src = base / "u.c"
    src.write_text("int lbw_one(void) { return 1; }\n")
    lib = base / "liblbw.so.1"
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,liblbw.so.1", "-o", str(lib), str(src)], check=True)
    subprocess.run([sys.executable, "-m", "libbroker", "wrap", str(lib), "--name", "lbw", "--version", "2.0",
                    "-o", str(base / "dist")], check=True, capture_output=True)
    [wheel] = (base / "dist").iterdir()
    site = base / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-index", "--target", str(site), str(wheel)], check=True)
    return str(site)


def test_wrapped_wheel_metadata_matches_importlib(wrapped_site) -> None:
    import pathlib

    [info] = [p for p in pathlib.Path(wrapped_site).iterdir() if p.name.endswith(".dist-info")]
    oracle = metadata.PathDistribution(info)
    assert _distinfo.name_and_version(str(info)) == (oracle.metadata["Name"], oracle.version)
    assert _distinfo.provider_entry_points([wrapped_site]) == [
        (str(info), ep.name, ep.value) for ep in oracle.entry_points.select(group=_distinfo.GROUP)]
    assert _distinfo.metadata_problem(str(info)) is None
    assert _distinfo.dist_label(str(info)) == ("libbroker_provider_lbw", "2.0")


@pytest.mark.parametrize("filename", ["METADATA", "entry_points.txt"])
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
def test_metadata_that_is_not_utf8_names_the_file_byte_and_offset(wrapped_site, tmp_path, filename: str,
                                                                    bad: bytes) -> None:
    # Invalid start byte, bad continuation, an encoded surrogate, a code point past U+10FFFF,
    # a sequence cut off at the end of the file: importlib.metadata (the oracle) raises
    # UnicodeDecodeError on each; _distinfo says where, and what to do.
    import pathlib
    import shutil

    site = pathlib.Path(shutil.copytree(wrapped_site, tmp_path / "site"))
    [info] = [p for p in site.iterdir() if p.name.endswith(".dist-info")]
    path = info / filename
    good = path.read_bytes()
    path.write_bytes(good + b"# " + bad)  # after every header and entry point: those still read
    oracle = metadata.PathDistribution(info)
    with pytest.raises(UnicodeDecodeError) as caught:
        oracle.metadata if filename == "METADATA" else oracle.entry_points  # noqa: B018
    offset = caught.value.start
    assert offset == len(good) + 2
    problem = _distinfo.metadata_problem(str(info))
    assert problem is not None
    where, why = problem
    assert where == str(path)
    assert f"{str(path)!r} is not UTF-8: byte 0x{bad[0]:02x} at offset {offset}" in why
    spec = "core metadata" if filename == "METADATA" else "entry points"
    assert f"expected UTF-8, as the {spec} specification requires" in why
    assert "fix: reinstall libbroker_provider_lbw with pip" in why
    # The rest still reads (no exception): the name, version and entry points are intact.
    assert _distinfo.name_and_version(str(info)) == ("libbroker-provider-lbw", "2.0")
    assert [ep[1:] for ep in _distinfo.provider_entry_points([str(site)])] == [("lbw", "libbroker_provider_lbw")]
    # A package (a spec's `packages`) is judged by METADATA alone: its entry points are not read.
    assert (_distinfo.metadata_problem(str(info), entry_points=False) is None) == (filename != "METADATA")
    path.write_bytes(good)  # repaired (a new identity): no problem any more
    assert _distinfo.metadata_problem(str(info)) is None


def test_link_identity_is_the_stat_identity_of_a_file_and_the_links_own_otherwise(tmp_path) -> None:
    # One lstat answers for a file that is not a link; it must be `_cache.identity` exactly,
    # or every record would look changed to the next process.
    from libbroker import _cache

    f = tmp_path / "entry_points.txt"
    f.write_text("[libbroker.providers]\n")
    assert _distinfo._link_identity(str(f)) == _cache.identity(str(f))
    assert _distinfo._link_identity(str(tmp_path / "absent.txt")) is None
    good = tmp_path / "good-link.txt"
    good.symlink_to(f)
    assert _distinfo._link_identity(str(good)) == _cache.identity(str(f))  # followed
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "nowhere")
    ident = _distinfo._link_identity(str(dangling))
    assert isinstance(ident, tuple) and ident[0] == "link"
