"""The history store: migrations, saving, search, filters, deletion, reconciliation."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from studio.core import history as history_module
from studio.core import history_schema
from studio.core.history import HistoryEntry, HistorySchemaError, HistoryStore, fts_query
from studio.core.metadata import ImageMetadata, read_metadata, save_image
from studio.core.request import GenerationRequest

T0 = 1_700_000_000.0  # a fixed unix time, so folders and ordering are predictable


def meta(
    prompt: str = "a red fox in the snow",
    *,
    rank: int = 0,
    created_at: float = T0,
    **request: object,
) -> ImageMetadata:
    fields: dict[str, object] = {"seed": 1234, "backend": "fake", "model": "tiny"} | request
    return ImageMetadata(
        GenerationRequest(prompt, **fields),  # type: ignore[arg-type]
        sampler="euler",
        model_hash="0123456789",
        score=0.5,
        rank=rank,
        created_at=created_at,
    )


def image(shade: int = 128) -> Image.Image:
    return Image.new("RGB", (8, 8), (shade, 255 - shade, 7))


def save_one(store: HistoryStore, prompt: str = "a red fox", **kwargs: object) -> HistoryEntry:
    (entry,) = store.save([(image(), meta(prompt, **kwargs))], job_key="job")  # type: ignore[arg-type]
    return entry


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def assert_index_matches_rows(store: HistoryStore) -> None:
    """FTS5's own check that the search index agrees with the rows it indexes."""
    conn = sqlite3.connect(store.database_path)
    conn.execute("INSERT INTO images_fts (images_fts, rank) VALUES ('integrity-check', 1)")
    conn.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> Iterator[HistoryStore]:
    with HistoryStore(data_dir) as opened:
        yield opened


# -- schema ---------------------------------------------------------------------------


def test_new_database_is_at_the_latest_version_in_wal_mode(store: HistoryStore) -> None:
    conn = sqlite3.connect(store.database_path)
    assert history_schema.schema_version(conn) == history_schema.LATEST_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_v1_database_is_migrated_forward(data_dir: Path) -> None:
    data_dir.mkdir()
    conn = sqlite3.connect(data_dir / "history.sqlite3", isolation_level=None)
    assert history_schema.migrate(conn, target=1) == [1]
    conn.execute(
        "INSERT INTO images (created_at, job_key, prompt, seed, width, height, steps, guidance,"
        " path, metadata_json) VALUES (?, 'old', 'an old lighthouse', 1, 64, 64, 0, 1.0,"
        " 'images/old-0.png', ?)",
        (T0, meta("an old lighthouse").to_json()),
    )
    conn.close()

    with HistoryStore(data_dir) as store:
        conn = sqlite3.connect(store.database_path)
        assert history_schema.schema_version(conn) == history_schema.LATEST_VERSION
        conn.close()
        # The full-text index was built for the rows the old database had.
        assert [e.request.prompt for e in store.search("lighthouse")] == ["an old lighthouse"]
        assert_index_matches_rows(store)


def test_a_database_from_a_newer_version_is_refused_untouched(data_dir: Path) -> None:
    data_dir.mkdir()
    newer = history_schema.LATEST_VERSION + 1
    conn = sqlite3.connect(data_dir / "history.sqlite3")
    conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()

    with pytest.raises(HistorySchemaError, match="newer Studio"):
        HistoryStore(data_dir)
    conn = sqlite3.connect(data_dir / "history.sqlite3")
    assert history_schema.schema_version(conn) == newer
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
    conn.close()


def test_a_failing_migration_leaves_the_last_good_version(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = "CREATE TABLE half (a);\nCREATE TABLE half (a);\n"  # fails on its 2nd statement
    monkeypatch.setattr(history_schema, "MIGRATIONS", (*history_schema.MIGRATIONS, broken))
    data_dir.mkdir()
    conn = sqlite3.connect(data_dir / "history.sqlite3", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        history_schema.migrate(conn, target=len(history_schema.MIGRATIONS))
    assert history_schema.schema_version(conn) == history_schema.LATEST_VERSION
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    conn.close()


# -- saving -----------------------------------------------------------------------------


def test_save_then_get_round_trips(store: HistoryStore) -> None:
    items = [(image(10 * rank), meta(rank=rank, seed=100 + rank)) for rank in range(3)]
    entries = store.save(items, job_key="job-1")

    assert [e.metadata for e in entries] == [m for _, m in items]
    for entry in entries:
        assert entry.path.is_file()
        assert entry.path.relative_to(store.images_dir).parts[:3] == ("2023", "11", "14")
        assert store.get(entry.id) == entry
        assert read_metadata(entry.path).studio == entry.metadata
        with Image.open(entry.path) as opened:
            assert opened.size == (8, 8)
    assert store.get(10_000) is None


def test_a_job_lists_best_rank_first_under_one_time(store: HistoryStore) -> None:
    # The engine stamps each image as it is made, so later ranks have later times.
    items = [(image(), meta(rank=rank, created_at=T0 + rank)) for rank in range(3)]
    entries = store.save(items, job_key="job")
    assert {e.created_at for e in entries} == {T0}
    assert [e.metadata.rank for e in store.list()] == [0, 1, 2]


def test_saving_a_job_key_twice_never_overwrites(store: HistoryStore) -> None:
    first = save_one(store)
    second = save_one(store)
    assert first.path != second.path
    assert first.path.is_file() and second.path.is_file()


def test_a_failed_image_write_leaves_no_file_no_row_no_temp(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def write_half_then_fail(image: Image.Image, handle: object, *args: object) -> None:
        handle.write(b"\x89PNG half an image")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(history_module, "save_image", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_one(store)
    assert files_under(store.images_dir) == []
    assert store.count() == 0


def test_a_failed_transaction_keeps_the_files_for_reconciliation(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(HistoryStore, "_insert", fail)
        with pytest.raises(sqlite3.OperationalError):
            store.save([(image(), meta(rank=r)) for r in range(2)], job_key="lost")
    assert store.count() == 0
    assert len(files_under(store.images_dir)) == 2

    report = store.reconcile()
    assert len(report.adopted) == 2
    assert [e.job_key for e in store.list()] == ["lost", "lost"]


def test_unicode_prompts_round_trip_exactly(data_dir: Path) -> None:
    prompt = "שלום עולם 🦊‍🔥 a fox\nsecond line\twith tab, «quotes» e\u0301 ﷽ 漢字"
    negative = "blurry 😵 مرحبا\r\nlow quality"
    with HistoryStore(data_dir) as store:
        entry = save_one(store, prompt, negative_prompt=negative)
        assert [e.id for e in store.search("שלום")] == [entry.id]
    with HistoryStore(data_dir) as reopened:
        again = reopened.get(entry.id)
    assert again is not None
    assert (again.request.prompt, again.request.negative_prompt) == (prompt, negative)
    assert read_metadata(again.path).studio == entry.metadata


# -- listing and search -------------------------------------------------------------------


def add_rows(store: HistoryStore, prompts: list[str], **request: object) -> list[int]:
    """Rows one second apart (newest last), without image files."""
    start = T0 + store.count()
    return store.insert_records(
        (meta(p, created_at=start + i, **request), f"job{start + i}", f"images/x/{start + i}.png")
        for i, p in enumerate(prompts)
    )


def test_listing_pages_newest_first(store: HistoryStore) -> None:
    ids = add_rows(store, [f"prompt number {i}" for i in range(25)])
    pages = [store.list(offset=offset, limit=10) for offset in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    assert [e.id for page in pages for e in page] == ids[::-1]
    assert store.count() == 25


def test_filters(store: HistoryStore) -> None:
    fox = add_rows(store, ["fox one", "fox two"], backend="onnx", model="small")
    owl = add_rows(store, ["owl one"], backend="torch", model="large")
    store.set_favourite(fox[0], True)

    def ids(**filters: object) -> list[int]:
        found = [e.id for e in store.list(**filters)]  # type: ignore[arg-type]
        assert store.count(**filters) == len(found)
        return found

    assert ids(favourites_only=True) == [fox[0]]
    assert ids(backend="onnx") == fox[::-1]
    assert ids(model="large") == owl
    assert ids(backend="onnx", model="large") == []
    created = {e.id: e.created_at for e in store.list()}
    assert ids(since=created[fox[1]]) == [owl[0], fox[1]]
    assert ids(until=created[fox[1]]) == [fox[0]]
    assert [e.id for e in store.search("one", backend="torch")] == owl
    assert store.count(query="one", favourites_only=True) == 1


def test_search_matches_words_and_the_last_words_prefix(store: HistoryStore) -> None:
    add_rows(
        store,
        [
            "portrait of an astronaut, oil painting",
            "an astronomer at night",
            "a red fox in the snow",
        ],
    )

    def prompts(query: str) -> set[str]:
        return {e.request.prompt for e in store.search(query)}

    assert prompts("fox") == {"a red fox in the snow"}
    assert prompts("astro") == {"portrait of an astronaut, oil painting", "an astronomer at night"}
    assert prompts("astro ") == set()  # a finished word is not a prefix
    assert prompts("oil paint") == {"portrait of an astronaut, oil painting"}
    assert prompts("ASTRONAUT portrait") == {"portrait of an astronaut, oil painting"}
    assert prompts("fox astronaut") == set()  # every word must match
    assert len(store.search("")) == 3  # no words: everything


def test_search_newest_first_and_paged(store: HistoryStore) -> None:
    ids = add_rows(store, [f"castle number {i}" for i in range(15)] + ["no match"])
    found = [e.id for off in (0, 6, 12) for e in store.search("castle", offset=off, limit=6)]
    assert found == ids[:15][::-1]


@pytest.mark.parametrize("walk", [False, True], ids=["sort-matches", "walk-index"])
def test_both_search_plans_give_the_same_pages(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch, walk: bool
) -> None:
    # The store walks the newest-first index for common words and sorts the matches of
    # rare ones; force each plan in turn.
    monkeypatch.setattr(history_module, "matches_are_common", lambda *args: walk)
    ids = add_rows(store, [f"{'red' if i % 3 else 'blue'} fox {i}" for i in range(40)])
    store.set_favourite(ids[4], True)
    reds = [i for n, i in enumerate(ids) if n % 3][::-1]
    assert [e.id for e in store.search("red fox", offset=5, limit=10)] == reds[5:15]
    assert [e.id for e in store.search("red", favourites_only=True)] == [ids[4]]
    assert_index_matches_rows(store)


def test_search_looks_in_the_negative_prompt(store: HistoryStore) -> None:
    (row,) = add_rows(store, ["a lake"], negative_prompt="blurry, watermark")
    assert [e.id for e in store.search("watermark")] == [row]


def test_search_ignores_case_and_diacritics(store: HistoryStore) -> None:
    add_rows(store, ["Café terrace at night", "a naïve façade", "cafe\u0301 decomposed"])
    cafes = {"Café terrace at night", "cafe\u0301 decomposed"}
    assert {e.request.prompt for e in store.search("cafe")} == cafes
    assert {e.request.prompt for e in store.search("CAFÉ")} == cafes
    assert [e.request.prompt for e in store.search("naive facade")] == ["a naïve façade"]


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        "'",
        "AND",
        "fox AND",
        "OR NOT",
        "NOT fox",
        "*",
        "fox*",
        "-",
        "-fox",
        "+",
        "NEAR(fox snow)",
        "prompt:fox",
        "{prompt}: fox",
        "(",
        ")",
        "^fox",
        'fox"snow',
        "\\",
        "a:b:c",
        "🚀",
        "   ",
        "\t\n",
        "x" * 2000,
        "%_",
        "'; DROP TABLE images; --",
    ],
)
def test_search_never_raises_on_user_text(store: HistoryStore, query: str) -> None:
    add_rows(store, ["a red fox in the snow and rain"])
    assert isinstance(store.search(query), list)
    assert store.count(query=query) >= 0


def test_operators_are_searched_as_words(store: HistoryStore) -> None:
    add_rows(store, ["a red fox in the snow and rain", "an owl"])
    assert [e.request.prompt for e in store.search("and ")] == ["a red fox in the snow and rain"]
    assert [e.request.prompt for e in store.search("AND ")] == ["a red fox in the snow and rain"]
    assert store.search("NOT fox") == []  # "not" is a word that no prompt has
    assert len(store.search('"fox"')) == 1


def test_common_words_walk_the_index_and_rare_ones_sort(store: HistoryStore) -> None:
    add_rows(store, [f"fox {'owl' if i == 7 else 'cat'} {i}" for i in range(100)])
    conn = sqlite3.connect(store.database_path)
    assert history_schema.matches_are_common(conn, '"fox"', 10)
    assert not history_schema.matches_are_common(conn, '"owl"', 10)
    conn.close()


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('fox "AND') == '"fox" """AND"*'
    assert fts_query("red fox ") == '"red" "fox"'
    assert fts_query("fox -") == '"fox"'  # punctuation-only terms are dropped
    assert fts_query(" * - ") is None


# -- favourites, tags, deletion -------------------------------------------------------


def test_favourites_and_tags(store: HistoryStore) -> None:
    entry = save_one(store)
    store.set_favourite(entry.id, True)
    store.add_tags(entry.id, ["  night  sky ", "fox", "fox", "", "   "])
    got = store.get(entry.id)
    assert got is not None and got.favourite
    assert got.tags == ("fox", "night sky")

    store.remove_tags(entry.id, ["fox", "never added"])
    store.set_favourite(entry.id, False)
    got = store.get(entry.id)
    assert got is not None and not got.favourite and got.tags == ("night sky",)
    store.add_tags(999, ["ghost"])  # unknown ids are ignored
    store.set_favourite(999, True)
    assert [e.tags for e in store.list()] == [("night sky",)]


def test_delete_removes_rows_tags_and_files(store: HistoryStore) -> None:
    entries = store.save([(image(), meta("a red fox", rank=r)) for r in range(3)], job_key="j")
    store.add_tags(entries[0].id, ["gone"])
    assert store.delete([entries[0].id, entries[1].id, 12345]) == 2

    assert [e.id for e in store.list()] == [entries[2].id]
    assert store.get(entries[0].id) is None
    assert not entries[0].path.exists() and not entries[1].path.exists()
    assert entries[2].path.exists()
    assert len(store.search("fox")) == 1  # the index followed the rows
    assert_index_matches_rows(store)
    conn = sqlite3.connect(store.database_path)
    assert conn.execute("SELECT count(*) FROM tags").fetchone()[0] == 0
    conn.close()


def test_files_kept_on_delete_are_not_adopted_back(store: HistoryStore) -> None:
    entry = save_one(store)
    assert store.delete([entry.id], delete_files=False) == 1
    assert entry.path.exists()
    report = store.reconcile()
    assert (report.adopted, report.quarantined) == ((), ())
    assert entry.path.exists() and store.count() == 0


# -- reconciliation -------------------------------------------------------------------


def test_reconcile_flags_missing_files_and_unflags_them_when_back(store: HistoryStore) -> None:
    entry = save_one(store)
    aside = store.data_dir / "aside.png"  # outside images/, or it would be adopted
    entry.path.rename(aside)

    assert store.reconcile().missing == (entry.id,)
    got = store.get(entry.id)
    assert got is not None and got.missing
    assert [e.id for e in store.list()] == [entry.id]  # flagged, still listed

    aside.rename(entry.path)
    report = store.reconcile()
    assert (report.missing, report.restored) == ((), (entry.id,))
    got = store.get(entry.id)
    assert got is not None and not got.missing


def test_reconcile_adopts_orphans_that_carry_our_metadata(store: HistoryStore) -> None:
    folder = store.images_dir / "2024" / "05" / "01"
    folder.mkdir(parents=True)
    metas = [meta("an orphaned lighthouse", rank=r, created_at=T0 + r) for r in range(2)]
    for m in metas:
        save_image(image(), folder / f"abc123-{m.rank}.png", "png", m)

    report = store.reconcile()
    assert len(report.adopted) == 2 and report.quarantined == ()
    entries = store.search("lighthouse")
    assert [e.metadata for e in entries] == metas  # best rank first, as one job
    assert {(e.job_key, e.created_at) for e in entries} == {("abc123", T0)}
    assert_index_matches_rows(store)
    assert store.reconcile() == history_module.ReconcileReport((), (), (), (), 0)


def test_reconcile_quarantines_foreign_files_without_overwriting(store: HistoryStore) -> None:
    folder = store.images_dir / "imports"
    folder.mkdir(parents=True)
    image().save(folder / "random.png")  # a PNG, but not ours
    (folder / "notes.txt").write_text("hello")
    quarantine = store.data_dir / "quarantine" / "imports"
    quarantine.mkdir(parents=True)
    (quarantine / "random.png").write_bytes(b"already here")

    report = store.reconcile()
    assert sorted(report.quarantined) == [quarantine / "notes.txt", quarantine / "random~2.png"]
    assert (quarantine / "random.png").read_bytes() == b"already here"
    assert files_under(store.images_dir) == []
    assert store.count() == 0


def test_reconcile_removes_temp_leftovers(store: HistoryStore) -> None:
    entry = save_one(store)
    leftover = entry.path.with_name(".tmp-abc123.png")
    leftover.write_bytes(b"\x89PNG interrupted")
    finder = store.images_dir / ".DS_Store"
    finder.write_bytes(b"")

    report = store.reconcile()
    assert report.temp_removed == 1
    assert not leftover.exists() and finder.exists()  # other hidden files are left alone
    assert (report.missing, report.adopted, report.quarantined) == ((), (), ())


# -- threads ----------------------------------------------------------------------------


def test_a_worker_saves_while_another_thread_lists(store: HistoryStore) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def worker() -> None:
        try:
            for job in range(25):
                items = [
                    (image(r), meta(f"job {job} fox", rank=r, created_at=T0 + job))
                    for r in range(2)
                ]
                store.save(items, job_key=f"job{job}")
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    while not done.is_set():
        page = store.list(limit=50)
        times = [e.created_at for e in page]
        assert times == sorted(times, reverse=True)
        store.search("fox")
        store.count()
    thread.join()
    assert errors == []
    assert store.count() == 50
    assert store.count(query="fox") == 50


def test_a_closed_store_refuses_work(data_dir: Path) -> None:
    store = HistoryStore(data_dir)
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.list()


def test_data_dir_paths_are_relative_in_the_database(store: HistoryStore) -> None:
    entry = save_one(store)
    conn = sqlite3.connect(store.database_path)
    (stored,) = conn.execute("SELECT path FROM images").fetchone()
    conn.close()
    assert not os.path.isabs(stored)
    assert store.data_dir / stored == entry.path
