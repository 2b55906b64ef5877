"""Oracle: Python's uuid module."""
import uuid

import pytest


def check(cb, tmp_path):
    for _ in range(20):
        value = uuid.uuid4()
        assert cb.parse(str(value)) == value.bytes
        assert cb.unparse(value.bytes) == str(value)
    raw, is_null = cb.random_uuid()
    assert uuid.UUID(bytes=raw).version == 4 and not is_null
    with pytest.raises(ValueError):
        cb.parse("not-a-uuid")
