#!/bin/sh
# Remake the small PE fixtures in tests/binary/fixtures/pe/ (committed as test data).
#
# Needs: Debian's mingw-w64 (x86_64-w64-mingw32-gcc, i686-w64-mingw32-gcc, their dlltool;
# in .ci/apt-packages.txt), lld (lld-link, llvm-dlltool) for delay-load imports and
# the ARM64 link, and `python -m ziglang` (pip install ziglang) to compile for aarch64.
# A toolchain that is missing skips its fixtures with a message.
#
# What each fixture exercises (tests compare every fact against pefile, not constants):
#   pe_fixture_x64.dll / pe_fixture_x86.dll  GNU ld: named, DATA, NONAME (ordinal-only)
#       exports, a named forwarder and an unnamed one, an import from an API set
#       (api-ms-win-core-synch-l1-2-0.dll), msvcrt/kernel32 imports.
#   pe_delay_x64.dll   lld-link: delay-load import of user32.dll (GNU ld 2.40 does not fill
#       the delay-import directory), a forwarder to an ordinal (kernel32.#1).
#   pe_fixture_arm64.dll   zig + lld-link: ARM64, forwarders, NONAME, API set, delay-load.
#   pe_fixture_x64.exe   an executable importing pe_fixture_x64.dll.
#
# Usage: sh tests/binary/make_pe_fixtures.sh [OUTDIR]   (default: the fixtures directory)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/fixtures/pe}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

cat > fixture.c <<'C'
#include <windows.h>
int pe_counter = 0;
int pe_add(int a, int b) { return a + b; }
int pe_hidden(void) { return 42; }
void pe_nap(void) { Sleep(0); pe_counter++; }
C
cat > delay.c <<'C'
#include <windows.h>
int pe_add(int a, int b) { return a + b; }
int pe_hidden(void) { return 42; }
void pe_nap(void) { Sleep(0); }
int pe_beep(void) { return MessageBeep(0); }
C
cat > main.c <<'C'
int pe_add(int, int);
int main(void) { return pe_add(1, 2) == 3 ? 0 : 1; }
C
# NAME @ORD NONAME: exported by ordinal only. NAME = DLL.FUNC: a forwarder.
exports='  pe_add
  pe_nap
  pe_counter DATA
  pe_hidden @5 NONAME
  pe_ticks = kernel32.GetTickCount
  pe_fwd_noname = kernel32.GetCurrentProcessId @9 NONAME'
api='LIBRARY api-ms-win-core-synch-l1-2-0.dll
EXPORTS'

have() { command -v "$1" >/dev/null 2>&1; }

mingw() {  # $1 triplet, $2 suffix, $3 decorated Sleep name for the import library
    if ! have "$1-gcc"; then echo "skip $2: $1-gcc not installed (apt-get install mingw-w64)"; return; fi
    printf 'LIBRARY pe_fixture_%s.dll\nEXPORTS\n%s\n' "$2" "$exports" > "fx_$2.def"
    printf '%s\n  %s\n' "$api" "$3" > "api_$2.def"
    "$1-dlltool" -k -d "api_$2.def" -l "libapi_$2.a"
    "$1-gcc" -O2 -s -shared -Wl,--no-insert-timestamp -o "$out/pe_fixture_$2.dll" \
        fixture.c "fx_$2.def" "libapi_$2.a"
    echo "made pe_fixture_$2.dll"
}
mingw x86_64-w64-mingw32 x64 Sleep
mingw i686-w64-mingw32 x86 Sleep@4

if have x86_64-w64-mingw32-gcc; then
    x86_64-w64-mingw32-gcc -O2 -s -Wl,--no-insert-timestamp -o "$out/pe_fixture_x64.exe" main.c \
        "$out/pe_fixture_x64.dll"
    echo "made pe_fixture_x64.exe"
fi

delay_def='LIBRARY pe_delay.dll
EXPORTS
  pe_add
  pe_nap
  pe_hidden @5 NONAME
  pe_ticks = kernel32.GetTickCount
  pe_ord_fwd = kernel32.#1'
if have x86_64-w64-mingw32-gcc && have lld-link && have llvm-dlltool; then
    mingwlib=/usr/x86_64-w64-mingw32/lib
    printf '%s\n' "$delay_def" > delay.def
    printf 'LIBRARY user32.dll\nEXPORTS\n  MessageBeep\n' > user32.def
    printf '%s\n  Sleep\n' "$api" > api.def
    llvm-dlltool -m i386:x86-64 -d user32.def -l user32.lib
    llvm-dlltool -m i386:x86-64 -d api.def -l api.lib
    x86_64-w64-mingw32-gcc -O2 -c -o delay.o delay.c
    # __delayLoadHelper2 is mingw-w64's (libmingwex), which names the image base __image_base__.
    lld-link /nologo /dll /noentry /Brepro /machine:x64 /out:"$out/pe_delay_x64.dll" /def:delay.def \
        delay.o api.lib user32.lib "$mingwlib/libkernel32.a" "$mingwlib/libmingwex.a" \
        "$mingwlib/libmsvcrt.a" /delayload:user32.dll /alternatename:__image_base__=__ImageBase
    rm -f "$out/pe_delay_x64.lib"
    echo "made pe_delay_x64.dll"
else
    echo "skip pe_delay_x64.dll: needs x86_64-w64-mingw32-gcc, lld-link and llvm-dlltool (apt-get install lld llvm)"
fi

if have lld-link && have llvm-dlltool && python3 -m ziglang version >/dev/null 2>&1; then
    cat > stub.c <<'C'
/* A stand-in for the delay-load helper so the link needs no ARM64 CRT: the fixture is
   read, never run. */
void *__delayLoadHelper2(const void *descriptor, void **slot) { (void)descriptor; return *slot; }
C
    printf 'LIBRARY pe_fixture_arm64.dll\nEXPORTS\n%s\n  pe_beep\n  pe_ord_fwd = kernel32.#1\n' "$exports" > arm.def
    printf 'LIBRARY user32.dll\nEXPORTS\n  MessageBeep\n' > user32.def
    printf '%s\n  Sleep\n' "$api" > api.def
    llvm-dlltool -m arm64 -d user32.def -l user32_arm64.lib
    llvm-dlltool -m arm64 -d api.def -l api_arm64.lib
    cat fixture.c > arm.c
    printf 'int pe_beep(void) { return MessageBeep(0); }\n' >> arm.c
    python3 -m ziglang cc -target aarch64-windows-gnu -O2 -c -o arm.o arm.c
    python3 -m ziglang cc -target aarch64-windows-gnu -O2 -c -o stub.o stub.c
    lld-link /nologo /dll /noentry /Brepro /machine:arm64 /out:"$out/pe_fixture_arm64.dll" /def:arm.def \
        arm.o stub.o api_arm64.lib user32_arm64.lib /delayload:user32.dll
    rm -f "$out/pe_fixture_arm64.lib"
    echo "made pe_fixture_arm64.dll"
else
    echo "skip pe_fixture_arm64.dll: needs lld-link, llvm-dlltool and python3 -m ziglang (pip install ziglang)"
fi
ls -l "$out"
