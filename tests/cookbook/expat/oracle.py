"""Oracles: xml.parsers.expat counts the same elements; dpkg records the version."""
import xml.parsers.expat

import pytest


def check(cb, tmp_path, library_version):
    document = b"<root>" + b"".join(b"<item n='%d'><x/></item>" % i for i in range(50)) + b"</root>"
    starts = []
    parser = xml.parsers.expat.ParserCreate()
    parser.StartElementHandler = lambda name, attrs: starts.append(name)
    parser.Parse(document, True)
    assert cb.count_elements(document) == (len(starts), len(starts))
    with pytest.raises(ValueError):
        cb.count_elements(b"<a><b></a>")
    if library_version is not None:  # XML_ExpatVersionInfo returns a struct by value
        assert ".".join(map(str, cb.version_info())) == library_version
