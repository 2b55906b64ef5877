"""Oracles: Python's integers; the version dpkg records for the exported gmp_version."""


def check(cb, tmp_path, library_version):
    for a, b in ((3**200, 7**150), (-(10**80) + 1, 12345678901234567890), (0, 5)):
        assert cb.multiply(a, b) == a * b
    if library_version is not None:
        assert cb.version() == library_version
