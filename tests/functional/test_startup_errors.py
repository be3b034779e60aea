"""Startup errors a real ZEO server answers: named as the setting at fault."""

from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_zeostore import Databases


def test_an_unknown_zeo_storage_is_reported_as_that(zeo_server):
    """The server answers "unknown storage": not "is runzeo running?"."""
    dbs = Databases.from_uri(zeo_server.uri(storage='nosuch'),
                             connect_timeout=1.0)
    with pytest.raises(ConfigurationError) as info:
        dbs.get()
    text = str(info.value)
    assert info.value.key == 'zodb_uri'
    assert "none named 'nosuch'" in text and 'storage=NAME' in text
    assert not dbs.is_open
    # The right name on the same server still opens.
    good = Databases.from_uri(zeo_server.uri(), connect_timeout=5.0)
    try:
        assert good.get().open().root() is not None
    finally:
        good.close()

