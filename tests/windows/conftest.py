"""The Windows subset, run by .ci/wine-tier.sh under wine's Windows CPython.

On any other platform these files are not collected: they need the mingw-built
master module and the fixture DLLs the tier script builds, whose directory it
passes in LIBBROKER_WINE_FIXTURES.
"""

from __future__ import annotations

import os
import sys

import pytest

if sys.platform != "win32":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def fixtures() -> str:
    path = os.environ.get("LIBBROKER_WINE_FIXTURES")
    if not path or not os.path.isdir(path):
        pytest.fail("LIBBROKER_WINE_FIXTURES does not name the directory .ci/wine-tier.sh built; "
                    "run the tier through .ci/wine-tier.sh")
    return path
