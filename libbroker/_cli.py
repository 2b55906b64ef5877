"""The `libbroker` command line: data on stdout, diagnostics on stderr.

Exit codes: 0 success, 1 not found or incompatible, 2 usage or spec error.
"""

from __future__ import annotations

import os
import sys

from ._errors import BrokerError, BrokerWarning, SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from argparse import Namespace as _Args
    from collections.abc import Callable, Sequence
    from typing import Any
else:  # what `_plain_args` builds: argparse's Namespace without importing argparse
    from types import SimpleNamespace as _Args

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2


def _terminal_columns() -> int:
    """`shutil.get_terminal_size().columns` (COLUMNS, else the terminal of stdout, else 80),
    without importing shutil, which pulls zlib, bz2 and lzma (~2 ms) into every run."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


_parser_class: Any = None


def _parser_type() -> type[argparse.ArgumentParser]:
    """libbroker's ArgumentParser subclass, made on first use: argparse (with gettext,
    locale and its regular expressions) is imported only when a command line needs it."""
    global _parser_class
    if _parser_class is not None:
        return _parser_class  # type: ignore[no-any-return]
    import argparse

    class _Formatter(argparse.HelpFormatter):
        """argparse's help formatter with the width computed by `_terminal_columns`: argparse
        makes one for every `add_argument` (to check the metavar), and each imported shutil."""

        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             _terminal_columns() - 2 if width is None else width)

    class _Parser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _Formatter)
            super().__init__(*args, **kwargs)

        def error(self, message: str) -> None:  # type: ignore[override]
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE)

    _parser_class = _Parser
    return _Parser


def _find_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="link name, e.g. 'z' for libz.so.1")
    p.add_argument("--version", dest="spec_version", metavar="SPEC", help="PEP 440 specifier")
    p.add_argument("--all", action="store_true", help="every candidate with its verdict")
    p.add_argument("--package", dest="packages", action="append", default=[], metavar="DIST",
                   help="also search the files of this installed distribution, as a spec's "
                   "`packages` does (e.g. scipy-openblas32); repeatable")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the binary to read (ELF, PE or Mach-O)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the spec file (TOML)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _generate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the spec file (TOML)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory to write the headers to (created; unchanged files are "
                        "left alone)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--package", dest="packages", action="append", default=[], metavar="DIST",
                   help="also list the libraries of this installed distribution, as a spec's "
                   "`packages` reaches them; repeatable")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _doctor_arguments(p: argparse.ArgumentParser) -> None:
    # Both `--import a --import b` and `--import a b`.
    p.add_argument("--import", dest="imports", action="extend", nargs="+", default=[],
                   metavar="MODULE", help="import MODULE first (found as `python -m` would: "
                   "the current directory first); repeatable")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _wrap_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("lib", help="the shared library file to wrap")
    p.add_argument("--name", required=True, help="the library's link name, e.g. 'z'")
    p.add_argument("--version", dest="lib_version", required=True,
                   help="the library's version, e.g. 1.3.1")
    p.add_argument("--spec", default=None, help="a spec whose symbols the library must export")
    p.add_argument("--dist-name", default=None, help="the wheel's distribution name")
    # Repeatable: one provider distribution per dependency the library has (Requires-Dist).
    p.add_argument("--requires", action="append", default=[], metavar="DIST",
                   help="a provider distribution this library depends on (Requires-Dist); repeatable")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory to write the wheel to")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _spec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("headers", nargs="+", metavar="HEADER",
                   help="header path, or a name #include <...> finds (curl/curl.h)")
    p.add_argument("--name", required=True, help="the table name, a C identifier")
    p.add_argument("--link", required=True, action="append", metavar="LINK",
                   help="link name of the library ('z' for libz.so.1); repeatable")
    p.add_argument("--function", dest="functions", action="append", default=[],
                   metavar="GLOB", help="select functions by name or glob (default: every "
                   "function the library's own headers declare); repeatable")
    p.add_argument("--variable", dest="variables", action="append", default=[],
                   metavar="GLOB", help="select exported objects for [variables]; repeatable")
    p.add_argument("--complete", action="append", default=[], metavar="GLOB",
                   help="write these struct types with their fields even when used only "
                   "through pointers (to allocate them); repeatable")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR",
                   help="include directory for the preprocessor; repeatable")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="MACRO[=VALUE]",
                   help="macro for the preprocessor; repeatable")
    p.add_argument("-o", "--output", metavar="SPEC.toml",
                   help="file to write (default: standard output)")
    p.add_argument("--check", action="store_true",
                   help="also resolve the library and list selected names it does not export "
                   "(exit 1 if any)")
    p.add_argument("--json", action="store_true",
                   help="print JSON (the spec text, selected names, notes, --check results) "
                   "instead of the spec text")


def _config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cflags", action="store_true", help="print -I flags for libbroker.h")
    p.add_argument("--includedir", action="store_true",
                   help="print the directory holding libbroker.h")
    p.add_argument("--pkgconfig", action="store_true",
                   help="print the directory holding libbroker.pc (for PKG_CONFIG_PATH)")
    p.add_argument("--json", action="store_true",
                   help="print all three as JSON: cflags, includedir, pkgconfig")


_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "find": ("the chosen file for a library, its version and origin", _find_arguments),
    "inspect": ("read a binary without loading it", _inspect_arguments),
    "check": ("resolve the library for a spec and check its symbols", _check_arguments),
    "generate": ("write libbroker_<name>.h and .pxd for a spec", _generate_arguments),
    "list": ("every library visible to libbroker, grouped by origin", _list_arguments),
    "doctor": ("configuration, mapped libraries, duplicate copies", _doctor_arguments),
    "wrap": ("build a provider wheel from a shared library", _wrap_arguments),
    "spec": ("write a spec from a library's real C headers", _spec_arguments),
    "config": ("compiler flags for code that includes generated headers", _config_arguments),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with *command* (a known subcommand), that subcommand only.

    Every subparser costs gettext look-ups and every `add_argument` a help formatter:
    building the eight subcommands nobody asked for was ~7 ms of every `libbroker` run.
    Without a command (`libbroker --help`) or with an unknown one (the "invalid choice"
    error lists them), every subcommand is built.
    """
    parser_type = _parser_type()
    parser = parser_type(
        prog="libbroker",
        description="Find, inspect and broker shared libraries for Python extensions.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"libbroker {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_type)
    sub.required = True
    if command not in _COMMANDS:
        command = None
    for name, (help_text, add_arguments) in _COMMANDS.items():
        if command is None or command == name:
            add_arguments(sub.add_parser(name, help=help_text))
    return parser


_default_showwarning: Any = None  # Python's, kept for warnings that are not libbroker's


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """libbroker's warnings as `libbroker: warning: ...`: a user can act on the message, not on
    the libbroker source line Python's default format shows."""
    if issubclass(category, BrokerWarning):
        print(f"libbroker: warning: {message}", file=sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    argv = sys.argv[1:] if argv is None else list(argv)
    args = _plain_args(argv)
    if args is None:
        # The subcommand is the first word that is not an option (the top level takes only
        # --version and --help, neither with a value).
        command = next((word for word in argv if not word.startswith("-")), None)
        args = build_parser(command).parse_args(argv)
    handler = globals()[f"cmd_{args.command}"]
    global _default_showwarning
    if warnings.showwarning is not _show_warning:
        _default_showwarning = warnings.showwarning
        warnings.showwarning = _show_warning
    try:
        return int(handler(args))
    except SpecError as exc:
        _error(args, exc)
        return EXIT_USAGE
    except BrokerError as exc:
        _error(args, exc)
        return EXIT_NOT_FOUND
    except BrokenPipeError:  # `libbroker list | head`
        return EXIT_OK


def _plain_args(argv: list[str]) -> argparse.Namespace | None:
    """The namespace argparse makes for the plainest `list` and `doctor` command lines
    (`list [--json]`, `doctor [--json] [--import MODULE ...]`), else None (argparse then
    parses it: help, errors, abbreviations, --package, anything unusual).

    These two are what people run to look at a process or a machine, and argparse's import,
    gettext look-ups and pattern compiling were a quarter of a warm `list`. Every word must
    be exactly one of those flags or a module name not starting with "-" after --import;
    tests/test_cli.py checks the result equals argparse's for each form.
    """
    if not argv or argv[0] not in ("list", "doctor"):
        return None
    command, rest = argv[0], argv[1:]
    use_json = False
    imports: list[str] = []
    at = 0
    while at < len(rest):
        word = rest[at]
        if word == "--json":
            use_json = True
            at += 1
        elif word == "--import" and command == "doctor":
            end = at + 1
            while end < len(rest) and not rest[end].startswith("-"):
                end += 1
            if end == at + 1:
                return None  # argparse says what is missing
            imports.extend(rest[at + 1:end])
            at = end
        else:
            return None
    if command == "list":
        return _Args(command=command, packages=[], json=use_json)
    return _Args(command=command, imports=imports, json=use_json)


def _error(args: argparse.Namespace, exc: BrokerError) -> None:
    """The diagnostic on stderr; with --json also a JSON error object on stdout,
    so a script reading stdout always gets JSON."""
    print(f"libbroker {args.command}: {exc}", file=sys.stderr)
    if getattr(args, "json", False):
        import json

        json.dump({"error": type(exc).__name__, "message": str(exc)}, sys.stdout, indent=2)
        sys.stdout.write("\n")


def _emit(args: argparse.Namespace, data: object, text: str) -> None:
    if args.json:
        import json  # only here: it costs `re` and a few ms on every text command

        json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def cmd_find(args: argparse.Namespace) -> int:
    from ._api import candidates, find

    if args.all:
        cands = candidates(args.name, args.spec_version, packages=args.packages)
        data = [c.as_dict() for c in cands]
        lines = []
        for c in cands:
            verdict = "accepted" if c.accepted else f"rejected: {c.reason}"
            lines.append(f"{_shown(c.path)}\t{c.origin}\t{c.version_text or '-'}\t{verdict}")
        if not cands:
            print(f"libbroker find: no file named like {args.name!r} was seen", file=sys.stderr)
        _emit(args, data, "\n".join(lines))
        return EXIT_OK if any(c.accepted for c in cands) else EXIT_NOT_FOUND
    info = find(args.name, args.spec_version, packages=args.packages)
    source = f" (from {info.version_source})" if info.version_source else ""
    text = (
        f"{info.path}\nversion: {info.version_text or 'unknown'}{source}\norigin: {info.origin}\n"
        f"soname: {info.soname or '-'}"
    )
    if info.dependencies:
        text += "\ndependencies (load order):\n" + "\n".join(
            f"  {d.needed} => {d.path} ({d.origin})" for d in info.dependencies
        )
    _emit(args, info.as_dict(), text)
    return EXIT_OK


def _article(word: str) -> str:
    """"an" before a vowel sound as read aloud ("an ELF", "a PE", "a Mach-O")."""
    return "an" if word[:1].upper() in "AEIO" else "a"


def inspect_data(path: str) -> dict[str, object]:
    """What `inspect --json` prints: design.md 5.3 keys for any format, plus the closure.

    "loadable" is the real verdict: this host's format, machine and word size,
    a shared library (an executable never is), and every library of its
    closure found and version-compatible (`_closure.resolve_closure`).
    Raises InvalidBinaryError for a file no reader understands.
    """
    from ._binary import check_compatible, host_binary, read_binary
    from ._closure import resolve_closure

    info = read_binary(path)
    if hasattr(info, "inspect_dict"):
        data: dict[str, object] = dict(info.inspect_dict())
    else:  # a reader without the common method: the common attribute names
        data = {
            key: getattr(info, key, None)
            for key in ("format", "soname", "needed", "exports", "rpath", "runpath", "min_os", "slices", "bits", "kind")
        }
        data["machine"] = getattr(info, "machine_name", None)
    data["path"] = path
    host = host_binary()
    reason: str | None = None
    kind = data.get("kind")
    if str(data.get("format", "")).upper() != str(host.format).upper():
        reason = f"a {data.get('format')} file; this interpreter loads {str(host.format).upper()} libraries only"
    elif kind != "shared":
        reason = f"is {_article(str(data.get('format')))} {data.get('format')} {kind}, not a shared library (an executable is never loadable)"
    else:
        reason = check_compatible(info, host)
    if reason is None:
        from ._resolve import loader_refusal

        reason = loader_refusal(os.path.realpath(path))  # what would kill the process in dlopen
    dependencies: list[dict[str, str]] = []
    if reason is None:
        closure = resolve_closure(path)
        reason = closure.reason
        dependencies = [d.as_dict() for d in closure.dependencies]
    data["loadable"] = reason is None
    data["reason"] = reason
    data["dependencies"] = dependencies
    # Names of the first release, kept for scripts that use them.
    glibc_required = getattr(info, "glibc_required", None)
    glibc = ".".join(map(str, glibc_required)) if glibc_required else None
    data["word_size"] = data.get("bits")
    data["byte_order"] = getattr(info, "byte_order", None)
    data["functions"] = data["exported_functions"] = data.get("exports")
    data["glibc"] = data["newest_glibc"] = f"GLIBC_{glibc}" if glibc else None
    data["compatible"] = data["loadable"]
    data["incompatibility"] = reason
    return data


def cmd_inspect(args: argparse.Namespace) -> int:
    path = os.path.abspath(args.path)
    data = inspect_data(path)
    deps = data["dependencies"]
    assert isinstance(deps, list)
    lines = [
        f"path: {path}",
        f"format: {data['format']} ({data['bits']}-bit, {data['byte_order']}-endian), {data['kind']}",
        f"machine: {data['machine']}",
        f"soname: {data['soname'] or '-'}",
        f"needed: {', '.join(data['needed']) or '-'}",  # type: ignore[arg-type]
        f"rpath: {':'.join(data['rpath']) or '-'}",  # type: ignore[arg-type]
        f"runpath: {':'.join(data['runpath']) or '-'}",  # type: ignore[arg-type]
        f"exported functions: {data['exports']}",
        f"newest glibc symbol version needed: {data['glibc'] or '-'}",
    ]
    if deps:
        lines.append("closure (load order):")
        lines += [f"  {d['needed']} => {d['path']} ({d['origin']})" for d in deps]
    lines.append(f"loadable here: {'yes' if data['loadable'] else 'no: ' + str(data['reason'])}")
    _emit(args, data, "\n".join(lines))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from . import _master
    from ._errors import MissingSymbolError
    from ._spec import Spec
    from ._tables import chosen_entry, resolve_spec, symbols_for

    spec = Spec.from_file(args.spec)
    status: dict[str, dict[str, list[str]]] = {
        "required": {"present": [], "missing": []},
        "optional": {"present": [], "missing": []},
    }
    data: dict[str, object] = {"spec": os.path.abspath(args.spec), "table": spec.name}
    try:
        library, resolution = resolve_spec(spec)
    except MissingSymbolError as exc:
        # Still a report: which file, and every required symbol it lacks.
        status["required"]["missing"] = list(exc.missing)
        status["optional"]["unchecked"] = [
            s for s, fn in zip(symbols_for(spec), spec.functions) if not fn.required
        ]
        data.update(path=exc.path, version=None, origin=None)
        print(f"libbroker check: {exc}", file=sys.stderr)
    else:
        symbols = symbols_for(spec, chosen_entry(resolution))
        addresses = _master.lookup_many(library.handle, [s.encode() for s in symbols])
        for fn, symbol, address in zip(spec.functions, symbols, addresses):
            group = status["required" if fn.required else "optional"]
            group["present" if address else "missing"].append(symbol)
        data.update(
            library=library.as_dict(),
            path=library.path,
            version=library.version_text,
            origin=library.origin,
        )
        if spec.packages and not library.origin.startswith("package:"):
            # The spec names distributions, yet the copy came from elsewhere: say why
            # (not installed, no such file in its RECORD), or a typo goes unnoticed (review F6).
            from ._providers import package_files

            _, searched = package_files(spec.packages, spec.names)
            data["packages_searched"] = searched
            for line in searched:
                print(f"libbroker check: note: {line}; {spec.name!r} came from {library.origin}",
                      file=sys.stderr)
    data.update(
        status,
        missing_required=status["required"]["missing"],
        missing_optional=status["optional"]["missing"],
        ok=not status["required"]["missing"],
    )
    lines = [
        (f"table {spec.name!r}: {data['path']} (version {data['version'] or 'unknown'}, "
        f"origin {data['origin'] or '-'})"),
        (f"required: {len(status['required']['present'])} present, missing: "
        f"{', '.join(status['required']['missing']) or 'none'}"),
        (f"optional: {len(status['optional']['present'])} present, missing: "
        f"{', '.join(status['optional']['missing']) or 'none'}"),
    ]
    _emit(args, data, "\n".join(lines))
    return EXIT_OK if data["ok"] else EXIT_NOT_FOUND


def cmd_generate(args: argparse.Namespace) -> int:
    from ._codegen import generate
    from ._spec import Spec

    spec = Spec.from_file(args.spec)
    try:
        written = generate(spec, args.output)
    except OSError as exc:
        raise SpecError(f"cannot write to {args.output!r}: {exc}", path=args.spec) from exc
    _emit(args, {"written": written}, "\n".join(written))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from ._listing import listing

    groups = listing()
    extra = _package_libraries(args.packages)
    if extra:
        from ._resolve import product_version

        for origin, item in extra:
            if item.get("version"):  # a provider manifest states it
                item.setdefault("version_source", "provider")
            else:  # design.md 5.2: the library if mapped, its package, or a product-numbered name
                found = product_version(os.path.realpath(str(item["path"])), str(item["name"]))
                item["version"], item["version_source"] = found if found else (None, None)
            groups.setdefault(origin, []).append(item)
    lines = []
    for origin, items in groups.items():
        items.sort(key=lambda item: (str(item["name"]), str(item["path"])))
        lines.append(f"{origin}:")
        lines.extend(_list_line(item) for item in items)
    _emit(args, groups, "\n".join(lines))
    return EXIT_OK


def _list_line(item: dict[str, str | None]) -> str:
    """One `list` row: name, version with its source (design.md 5.2), path, and why `find`
    would refuse the file when it would."""
    version = f"{item['version']} ({item['version_source']})" if item.get("version") else "-"
    refused = f"\tREFUSED: {item['refused']}" if item.get("refused") else ""
    return f"  {item['name']}\t{version}\t{_shown(item['path'])}{refused}"


def _shown(path: str | None) -> str:
    """A path for a tab-separated line: quoted when it holds a line break, tab or other
    control character, so one file stays one line (review F8)."""
    return str(path) if path is None or path.isprintable() else repr(path)


def _package_libraries(packages: list[str]) -> list[tuple[str, dict[str, str | None]]]:
    """(origin, {name, path, version}) for the shared libraries of installed ``packages``."""
    if not packages:
        return []
    from . import _distinfo
    from ._discovery import link_name_of
    from ._providers import _Dist, distribution_name_problem, package_files, search_path

    found: list[tuple[str, dict[str, str | None]]] = []
    for package in packages:
        problem = distribution_name_problem(package)  # a path is never looked up (review F6)
        if problem is not None:
            print(f"libbroker list: --package {package!r} ignored: {problem}", file=sys.stderr)
            continue
        # `_distinfo`, not importlib.metadata: a FIFO as RECORD must not hang, a bad byte
        # must not be a traceback (review2 F4/F5).
        info_dir = _distinfo.find_distribution(package, search_path())
        if info_dir is None:
            print(f"libbroker list: package {package!r} is not installed (fix: pip install "
                  f"{package})", file=sys.stderr)
            continue
        try:
            listed = _Dist(info_dir).files() or []  # RECORD, or an egg-info's file lists
        except _distinfo.MetadataError as exc:
            print(f"libbroker list: package {package!r} ignored: {exc}", file=sys.stderr)
            continue
        names = sorted({n for n in (link_name_of(f.rpartition("/")[2]) for f in listed) if n})
        files, _ = package_files([package], names)
        for provided in files:
            name = link_name_of(os.path.basename(provided.path)) or os.path.basename(provided.path)
            found.append((provided.origin, {"name": name, "path": provided.path,
                                            "version": provided.version}))
    return found


def cmd_doctor(args: argparse.Namespace) -> int:
    import importlib

    # Like `python -m`: the current directory first (a console script's sys.path[0]
    # is its bin directory, where the user's module is not).
    if args.imports and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    from ._doctor import _loaded_paths

    failures = []
    imports: list[dict[str, object]] = []
    for module in args.imports:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import error is reported, doctor keeps diagnosing
            failures.append(f"--import {module!r} failed: {type(exc).__name__}: {exc}")
            imports.append({"module": module, "ok": False,
                            "error": f"{type(exc).__name__}: {exc}"})
            print(f"libbroker doctor: {failures[-1]}", file=sys.stderr)
        else:
            imports.append({"module": module, "ok": True, "error": None})
    baseline = _loaded_paths()  # what the user's modules mapped; doctor's own comes after
    from ._doctor import format_report, report

    data = report(baseline=baseline)
    data["imports"] = imports
    if failures:
        warnings = data.setdefault("warnings", [])
        assert isinstance(warnings, list)
        warnings.extend(failures)
    _emit(args, data, format_report(data))
    return EXIT_OK if not failures else EXIT_NOT_FOUND


def cmd_spec(args: argparse.Namespace) -> int:
    from ._headerspec import missing_exports, spec_from_headers

    result = spec_from_headers(
        args.headers, name=args.name, link=args.link, functions=args.functions,
        variables=args.variables, include_dirs=args.include_dirs, defines=args.defines,
        complete=args.complete,
    )
    for note in result.notes:
        print(f"libbroker spec: {note}", file=sys.stderr)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(result.text)
        except OSError as exc:
            raise SpecError(f"cannot write {args.output!r}: {exc.strerror or exc}") from exc
    elif not args.json:
        sys.stdout.write(result.text)
    data: dict[str, object] = {
        "name": args.name, "links": args.link, "output": args.output, "text": result.text,
        "functions": result.functions, "variables": result.variables, "notes": result.notes,
    }
    status = EXIT_OK
    if args.check:
        path, missing = missing_exports(result.text, args.link, result.renames)
        print(f"libbroker spec --check: {path}: {len(result.functions) + len(result.variables)} "
              f"selected, {len(missing)} not exported", file=sys.stderr)
        for line in missing:
            print(f"  {line}", file=sys.stderr)
        data["check"] = {"library": path, "missing": missing}
        status = EXIT_NOT_FOUND if missing else EXIT_OK
    if args.json:  # stdout carries the JSON only; the spec text is its "text"
        import json

        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    return status


def cmd_config(args: argparse.Namespace) -> int:
    from ._api import get_include

    include = get_include()
    if args.json:
        import shlex

        from .build import pkgconfig_dir

        _emit(args, {"cflags": shlex.quote(f"-I{include}"), "includedir": include,
                     "pkgconfig": pkgconfig_dir()}, "")
    elif args.pkgconfig:
        from .build import pkgconfig_dir

        print(pkgconfig_dir())
    elif args.includedir:
        print(include)
    else:  # --cflags, also the default
        import shlex

        print(shlex.quote(f"-I{include}"))
    return EXIT_OK


def cmd_wrap(args: argparse.Namespace) -> int:
    from ._wrap import wrap

    wheel = wrap(
        os.path.abspath(args.lib),
        name=args.name,
        version=args.lib_version,
        out_dir=args.output,
        spec=args.spec,
        dist_name=args.dist_name,
        requires=args.requires,
    )
    _emit(args, {"wheel": wheel}, wheel)
    return EXIT_OK
