"""`libbroker/__init__.py`: the package imports nothing until a name is used (PEP 562)."""

import json
import subprocess
import sys

import libbroker


def _child(code: str) -> object:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_runs_no_submodule() -> None:
    # In a fresh interpreter: what `import libbroker` and a consumer's
    # `import libbroker._runtime` add to sys.modules.
    code = (
        "import sys, json; before = set(sys.modules); import libbroker; a = set(sys.modules) - before; "
        "import libbroker._runtime; b = set(sys.modules) - before - a; "
        "print(json.dumps([sorted(a), sorted(b)]))"
    )
    added, runtime = _child(code)  # type: ignore[misc]
    assert [m for m in added if m.startswith("libbroker.")] == []
    # The subinterpreter probe (design.md 5.1) is the only other module.
    assert set(added) <= {"libbroker", "_xxsubinterpreters", "_interpreters"}, added
    # The consumer's entry point: the registry and the disk cache it reads, nothing heavy.
    ours = {m for m in runtime if m.startswith("libbroker.")}
    assert ours <= {"libbroker._runtime", "libbroker._registry", "libbroker._cache", "libbroker._locks",
                    "libbroker._master", "libbroker._warm"}, ours
    heavy = ("packaging", "re", "typing", "tomllib", "importlib.metadata", "dataclasses", "json",
             "pathlib", "email", "pycparser", "platformdirs")
    assert [m for m in runtime if m in heavy] == [], runtime


def test_every_public_name_resolves_lazily() -> None:
    code = (
        "import sys, json, libbroker; out = {}\n"
        "for n in libbroker.__all__:\n"
        "    v = getattr(libbroker, n); out[n] = getattr(v, '__module__', None) or type(v).__name__\n"
        "print(json.dumps(out))"
    )
    resolved = _child(code)
    assert isinstance(resolved, dict)
    assert sorted(resolved) == sorted(libbroker.__all__)
    for name in libbroker.__all__:
        if name != "__version__":
            assert resolved[name].startswith("libbroker."), (name, resolved[name])
    assert set(libbroker.__all__) <= set(dir(libbroker))


def test_the_same_objects_as_the_submodules() -> None:
    from libbroker import _api, _errors, _types

    assert libbroker.find is _api.find
    assert libbroker.BrokerError is _errors.BrokerError
    assert libbroker.LibraryInfo is _types.LibraryInfo


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        libbroker.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_submodules_are_attributes_on_first_use() -> None:
    code = (
        "import json, libbroker; m = libbroker._api; "
        "print(json.dumps([m.__name__, hasattr(libbroker, '_no_such_module')]))"
    )
    assert _child(code) == ["libbroker._api", False]
