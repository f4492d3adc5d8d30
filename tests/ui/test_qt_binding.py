"""The Qt binding itself: a session of hours makes millions of calls into Qt."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QLabel


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12")
def test_calls_into_qt_keep_the_reference_count_of_none(qapp) -> None:
    # PySide6 6.12.0 on Python 3.11 released a reference to None at every call that
    # returns nothing; after a few thousand calls the app aborted ("deallocating None").
    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(2_000):
        label.setText("x")
        qapp.processEvents()
    assert sys.getrefcount(None) >= before - 50  # other code may drop a few, not thousands
