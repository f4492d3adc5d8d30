"""A damaged history database: the app starts, keeps the bad file, rebuilds what the
image files tell, keeps the favourites SQLite can still read, and tells the user."""

from __future__ import annotations

import pytest
from PIL import Image

from studio.core.app import Core
from studio.core.history import HistoryStore
from studio.core.metadata import ImageMetadata
from studio.core.request import GenerationRequest


def fill(data, jobs: int = 3) -> None:
    with HistoryStore(data) as store:
        for n in range(jobs):
            request = GenerationRequest(f"job {n}", seed=n, count=2, backend="fake")
            entries = store.save(
                [(Image.new("RGB", (16, 16)), ImageMetadata(request, rank=r)) for r in range(2)],
                job_key=f"job{n}",
            )
            store.set_favourite(entries[0].id, n == 1)


def garbage(path) -> None:
    path.write_bytes(b"this is not a database at all " * 100)


def torn(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)  # a half of zeros
    path.write_bytes(bytes(data))


@pytest.mark.reliability
@pytest.mark.parametrize("damage", [garbage, torn])
def test_a_damaged_database_is_kept_aside_and_rebuilt(tmp_path, damage) -> None:
    home = tmp_path / "home"
    core = Core.open(home)
    core.close()
    fill(home / "data")
    database = home / "data" / "history.sqlite3"
    for side in ("-wal", "-shm"):
        (home / "data" / f"history.sqlite3{side}").unlink(missing_ok=True)
    damage(database)
    core = Core.open(home)
    try:
        recovery = core.recovery
        assert recovery is not None and recovery.backup.exists()
        assert recovery.images == 6
        assert core.history.count() == 6
        assert "was damaged" in recovery.message() and recovery.backup.name in recovery.message()
        assert {e.request.prompt for e in core.history.list()} == {"job 0", "job 1", "job 2"}
    finally:
        core.close()
    again = Core.open(home)  # and the rebuilt one opens as any other
    try:
        assert again.recovery is None and again.history.count() == 6
    finally:
        again.close()


@pytest.mark.reliability
def test_the_cli_and_the_app_say_so(tmp_path, capsys, qtbot) -> None:
    from studio.api import EXIT_OK
    from studio.cli import main
    from studio.ui.main_window import MainWindow

    home = tmp_path / "home"
    Core.open(home).close()
    fill(home / "data", jobs=1)
    garbage(home / "data" / "history.sqlite3")
    assert main(["history", "list", "--data-dir", str(home)]) == EXIT_OK
    assert "history database was damaged" in capsys.readouterr().err
    garbage(home / "data" / "history.sqlite3")
    core = Core.open(home)
    try:
        window = MainWindow(core)
        qtbot.addWidget(window)
        assert "was damaged" in window.message.text()
        qtbot.waitUntil(lambda: hasattr(window, "recovery_box"), timeout=5_000)
        assert window.recovery_box.isVisible()
    finally:
        core.close()


@pytest.mark.reliability
def test_favourites_are_read_back_where_sqlite_still_can(tmp_path) -> None:
    from studio.core.history_recovery import _rebuild

    data = tmp_path / "data"
    fill(data)  # job 1's best image is a favourite
    store, recovery = _rebuild(data, "a damaged index (as quick_check might report)")
    try:
        assert (recovery.images, recovery.favourites) == (6, 1)
        (favourite,) = store.list(favourites_only=True)
        assert favourite.request.prompt == "job 1"
    finally:
        store.close()
