"""A consumer's import when the compiled warm path could not replay a verdict.

Generated headers call `_libbroker_warm.import_table` (csrc/_libbroker_warm.c): the in-process
registry, then the table index on disk replayed in C. When that defers (no
entry, a stamp changed, a case only the Python rules judge), it calls
`import_table` here: the Python replay of the index (`_registry._from_disk`),
else `_tables.build_table` (search, judge, load, check, remember).
"""

from . import _registry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType


def import_table(
    name: str, spec_digest: str, spec_text: str, module: "str | None" = None
) -> object:
    """The capsule for the spec whose text is *spec_text* (digest *spec_digest*).

    Raises the BrokerError of the search or the checks (the header turns it into
    ImportError with this error as its cause).

    *module*: the importing extension module's name; when None (the generated C
    headers), the module the import system is initialising, if any.
    """

    from . import _request

    def build() -> object:
        from ._tables import build_table

        where = f"<spec of table {name!r}>"
        if _request.is_request(spec_text):
            # A header from this version: the spec arrives parsed (no TOML, no C parser).
            request = _request.parse(spec_text, where)
            request.text_crc = crc
            return build_table(request)
        from ._spec import Spec  # a header generated before requests: its compacted spec

        return build_table(Spec.from_string(spec_text, path=where))

    crc = layout = slots = None
    if _request.is_request(spec_text):
        import _libbroker_warm

        crc = _libbroker_warm.crc32(spec_text.encode("utf-8", "surrogateescape"))
        layout = _request.layout_of(spec_text)
        slots = _request.slots_of(spec_text)
    capsule = _registry.capsule_for(spec_digest, build, crc, layout, slots)
    if module is None:
        module = _importing_module()
    if module is not None:
        _registry.note_consumer(capsule, module)
    return capsule


def _importing_module() -> "str | None":
    """The extension module whose init function is running, read from the frames of
    importlib's ExtensionFileLoader (exec_module for multi-phase init, as Cython's
    modules use; create_module for single-phase C modules); None outside an import."""
    import sys

    try:
        frame: FrameType | None = sys._getframe(2)  # import_table's caller is C: above it, importlib
    except ValueError:
        return None
    for _ in range(12):
        if frame is None:
            return None
        code = frame.f_code.co_name
        if code == "exec_module":
            name = getattr(frame.f_locals.get("module"), "__name__", None)
            return name if isinstance(name, str) else None
        if code == "create_module":
            name = getattr(frame.f_locals.get("spec"), "name", None)
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None


