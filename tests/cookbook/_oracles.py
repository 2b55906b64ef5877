"""Facts the cookbook consumers are checked against, from sources nobody here wrote."""

from __future__ import annotations

import os
import shutil
import subprocess


def dpkg_upstream_version(library_path: str) -> str | None:
    """The upstream version dpkg records for the package owning ``library_path``
    ("2:6.2.1+dfsg1-1.1" -> "6.2.1"), or None when dpkg does not own it."""
    if shutil.which("dpkg-query") is None:
        return None
    real = os.path.realpath(library_path)
    given = {real, library_path}
    candidates = set(given)
    for path in given:  # merged /usr: dpkg may record either spelling
        candidates.add(path[4:] if path.startswith("/usr/") else "/usr" + path)
    for path in sorted(candidates):
        found = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True,
                               check=False)
        if found.returncode == 0:
            package = found.stdout.split(":", 1)[0].strip()
            version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                                     capture_output=True, text=True, check=True).stdout
            version = version.split(":", 1)[-1]  # epoch
            return version.split("-", 1)[0].split("+", 1)[0].split("~", 1)[0]
    return None
