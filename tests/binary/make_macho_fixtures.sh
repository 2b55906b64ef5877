#!/bin/sh
# Remake the committed Mach-O test fixtures in tests/binary/fixtures/macho/.
#
# Needs Debian's clang, lld (ld64.lld) and llvm (llvm-lipo), and `ziglang`
# from PyPI (python3 -m ziglang). No macOS SDK is needed: the C sources
# include nothing, and libSystem is a two-symbol text stub (.tbd) written here.
# The tests compare these files against macholib and lief, so remaking them
# with other tool versions keeps the tests valid.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="${MACHO_FIXTURES_OUT:-$here/fixtures/macho}"  # the tests remake them elsewhere to check this script
PYTHON=${PYTHON:-python3}
tool() { command -v "$1" || command -v "$1-14" || command -v "$1-15" || command -v "$1-16" || { echo "missing $1" >&2; exit 1; }; }
LD64=$(tool ld64.lld)
LIPO=$(tool llvm-lipo)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sdk/usr/lib" "$out"

cat > "$work/sdk/usr/lib/libSystem.tbd" <<'EOF'
--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64-macos ]
install-name:    '/usr/lib/libSystem.B.dylib'
current-version: 1311
exports:
  - targets:     [ x86_64-macos, arm64-macos ]
    symbols:     [ dyld_stub_binder ]
...
EOF
cat > "$work/base.c" <<'EOF'
int base_add(int a, int b) { return a + b; }
int base_mul(int a, int b) { return a * b; }
int base_value = 3;
EOF
cat > "$work/user.c" <<'EOF'
extern int base_add(int, int);
int uses_base(int x) { return base_add(x, 1); }
EOF
echo 'int main(void) { return 0; }' > "$work/main.c"

# -mlinker-version: clang passes -platform_version only to a "new" ld64.
cc() { clang -O2 -fuse-ld="$LD64" -mlinker-version=711 -isysroot "$work/sdk" "$@"; }
cd "$work"

# A versioned dylib with an @rpath install name (LC_BUILD_VERSION macOS 11).
cc -target arm64-apple-macos11 -dynamiclib base.c -o libbase.dylib \
   -install_name @rpath/libbase.1.dylib -current_version 1.2.3 -compatibility_version 1.0.0
# The same for x86_64 macOS 10.9: linkers write LC_VERSION_MIN_MACOSX below 10.14.
cc -target x86_64-apple-macos10.9 -dynamiclib base.c -o libbase_x86_64.dylib \
   -install_name @rpath/libbase.1.dylib -current_version 1.2.3 -compatibility_version 1.0.0
# A universal (fat) file of both.
"$LIPO" -create libbase.dylib libbase_x86_64.dylib -output libbase_fat.dylib
# A weak dependency and two LC_RPATH entries.
cc -target arm64-apple-macos11 -dynamiclib user.c -o libweak.dylib -L. -Wl,-weak-lbase \
   -Wl,-rpath,@loader_path/../lib -Wl,-rpath,/opt/libbroker/lib
# A re-exported dependency (LC_REEXPORT_DYLIB).
cc -target arm64-apple-macos11 -dynamiclib user.c -o libreexport.dylib -L. -Wl,-reexport-lbase
# A bundle (MH_BUNDLE) and an executable (MH_EXECUTE).
cc -target arm64-apple-macos11 -bundle user.c -o plugin.bundle -L. -lbase
cc -target arm64-apple-macos11 main.c -o hello
# A 32-bit object file: no exports trie, so exports come from the symbol table.
clang -target i386-apple-macos10.6 -c base.c -o base_i386.o
# No current linker writes LC_LAZY_LOAD_DYLIB, and ld64.lld 14 cannot write
# LC_LOAD_UPWARD_DYLIB: turn libweak's weak command (LC_LOAD_WEAK_DYLIB) into
# each, in place; everything else stays valid.
"$PYTHON" - <<'EOF'
import struct
for name, new_cmd in (("liblazy.dylib", 0x20), ("libupward.dylib", 0x80000023)):
    data = bytearray(open("libweak.dylib", "rb").read())
    ncmds, = struct.unpack_from("<I", data, 16)
    pos = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, pos)
        if cmd == 0x80000018:  # LC_LOAD_WEAK_DYLIB
            struct.pack_into("<I", data, pos, new_cmd)
        pos += size
    open(name, "wb").write(data)
EOF
# zig's linker: ad-hoc code signature (LC_CODE_SIGNATURE), its own trie writer.
"$PYTHON" -m ziglang cc -target aarch64-macos.12.0 -O2 -fno-sanitize=all -shared base.c \
   -o libzig.dylib -Wl,-install_name,@rpath/libzig.dylib

for f in libbase.dylib libbase_x86_64.dylib libbase_fat.dylib libweak.dylib libreexport.dylib \
         plugin.bundle hello base_i386.o liblazy.dylib libupward.dylib libzig.dylib; do
    cp "$f" "$out/$f"
done
ls -l "$out"
