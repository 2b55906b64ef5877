"""`_pep440`: plain specifier checks agree with packaging (the oracle) case by case."""

import itertools

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from libbroker import _pep440
from libbroker._resolve import checked_version, parse_specifier

VERSIONS = ["0", "1", "1.0", "1.2", "1.2.0", "1.2.11", "1.2.13", "1.3", "2", "2.0.0.0", "1.02",
            "10.4.1", "1.2.13.1", " 1.2.13 "]
BOUNDS = ["1", "1.2", "1.2.0", "1.2.11", "1.2.13", "2", "1.02", "10.4"]


def _specs() -> list[str]:
    out = []
    for op in ("==", "!=", "<=", ">=", "<", ">", "~="):
        for bound in BOUNDS:
            if op == "~=" and "." not in bound:
                continue
            out.append(f"{op}{bound}")
            if op in ("==", "!="):
                out.append(f"{op}{bound}.*")
    out += [">=1.2,<2", ">= 1.2.11, != 1.2.12", "~=1.2.0,!=1.2.5", ">=1,<=1.2.13,", "==1.*,>1.2"]
    return out


@pytest.mark.parametrize("spec", _specs())
def test_plain_specifiers_agree_with_packaging(spec: str) -> None:
    ours = _pep440.parse(spec)
    assert ours is not None, spec
    theirs = SpecifierSet(spec)
    assert str(ours) == str(theirs)
    for text in VERSIONS:
        assert ours.contains(text, prereleases=True) == theirs.contains(Version(text.strip()), prereleases=True), (spec, text)


@pytest.mark.parametrize("spec", ["===1.0", ">=1.0rc1", "==1.0.post1", ">=1!2", "==1.0+local", "~=1",
                                  "<=1.*", "bogus", ""])
def test_the_rest_goes_to_packaging(spec: str) -> None:
    assert _pep440.parse(spec) is None


@pytest.mark.parametrize("text", ["1.2.13rc1", "v1.2.13", "1.2.13.post2", "expat_2.5.0"])
def test_versions_that_are_not_plain_use_packaging(text: str) -> None:
    spec = parse_specifier(">=1.2")
    assert isinstance(spec, _pep440.Specifier)
    seen = checked_version(text, spec)
    assert isinstance(seen, Version)
    assert spec.contains(seen, prereleases=True) == SpecifierSet(">=1.2").contains(seen, prereleases=True)


def test_checked_version_normalizes_like_packaging() -> None:
    spec = parse_specifier("==1.2")
    for text in ("1.02", "01.2.0", "1.2"):
        assert checked_version(text, spec) == str(Version(text))
    assert list(itertools.islice(VERSIONS, 1))  # the table is not empty
