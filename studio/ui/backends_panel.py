"""The backends panel: each installed backend, its status (not loaded yet, ready, failed
with its error), its device and its models, and where model folders are looked for;
models and model folders are added here. Reading a backend imports its code and adding a
model reads its file, so both happen off the GUI thread; so does hashing a model file
(seconds for a big one): its hash shows "…" until it is ready."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.app import Core
from studio.core.backend import ModelInfo
from studio.core.model_files import ModelFile, PickleRefused
from studio.core.sizes import readable_size
from studio.ui.tasks import run_in_background

log = logging.getLogger(__name__)
PENDING = "…"  # a library model's hash while it is being computed
HASH_COLUMN = 6


@dataclass
class BackendReport:
    id: str
    name: str = ""
    status: str = ""
    device: str = ""
    error: str = ""
    details: str = ""
    models: list[ModelInfo] = field(default_factory=list)


def read_backends(core: Core) -> list[BackendReport]:
    """What every backend says of itself, with the short hash of each library model
    (PENDING where not hashed yet: `hash_model` computes it), and the files of the model
    folders that cannot be used, with why (imports each plugin: call off the GUI thread)."""
    library = core.models()
    entries = library.entries()  # read once: each entry's files are opened to identify it
    hashes = {
        str(e.info.path): library.cached_short_hash(e.info) or PENDING
        for e in entries
        if e.info is not None
    }
    reports = []
    for record in core.registry.records():
        report = BackendReport(record.id)
        try:
            backend = core.registry.get(record.id)
            report.name = backend.display_name or record.id
            report.device = core.engine.device(record.id) or backend.device()
            report.models = [
                m if m.hash or m.ref not in hashes else dataclasses.replace(m, hash=hashes[m.ref])
                for m in backend.models()
            ]
        except Exception as error:  # a plugin's own fault: shown, never raised
            report.error = str(error)
        record = core.registry.record(record.id)  # as it stands after the import
        report.error = report.error or record.error
        report.details = record.traceback
        report.status = "failed" if report.error else "ready"
        reports.append(report)
    refused = [e for e in entries if e.info is None]
    if refused:
        reports.append(
            BackendReport(
                "",
                name="Model files that cannot be used",
                status=f"{len(refused)} refused",
                error="select this line to see why",
                details="\n\n".join(f"{e.path}\n  {e.error}" for e in refused),
            )
        )
    return reports


def hash_model(core: Core, ref: str) -> str:
    """The short hash of a library model (reads the whole file unless cached)."""
    library = core.models()
    return library.short_hash(library.find(ref))


class BackendsDialog(QDialog):
    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.setWindowTitle("Backends")
        self.resize(720, 480)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(
            ["Backend / model", "Status", "Device", "Architecture", "Format", "Size", "Hash"]
        )
        self.details = QPlainTextEdit(readOnly=True)
        self.details.setPlaceholderText("Select a backend that failed to see why.")
        self.details.setMaximumHeight(140)
        self.folders = QLabel()
        self.folders.setWordWrap(True)
        refresh = QPushButton("Refresh")
        add_model = QPushButton("Add model…")
        add_model.setToolTip(
            "A .safetensors checkpoint (pickles are refused, and offered for conversion)"
        )
        add_folder = QPushButton("Add folder…")
        add_folder.setToolTip("A diffusers or ONNX model folder, or a folder of models")
        # offered once a pickle was refused: its tensors only, never its code
        self.convert = QPushButton("Convert to safetensors")
        self.convert.setToolTip(
            "Reads only tensors (torch.load with weights_only=True) and "
            "writes a .safetensors file beside the checkpoint"
        )
        self.convert.hide()
        self._refused: Path | None = None
        buttons = QHBoxLayout()
        for button in (add_model, add_folder, self.convert):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.folders)
        layout.addLayout(buttons)
        refresh.clicked.connect(self.refresh)
        add_model.clicked.connect(lambda: self._pick(folder=False))
        add_folder.clicked.connect(lambda: self._pick(folder=True))
        self.convert.clicked.connect(self._convert_refused)
        self.tree.currentItemChanged.connect(self._show_details)
        self.reports: list[BackendReport] = []
        self._listing = 0  # counts refreshes: hashing for an older listing stops
        self.refresh()

    def _pick(self, folder: bool) -> None:
        if folder:
            chosen = QFileDialog.getExistingDirectory(self, "Add a model folder")
        else:
            kinds = "Checkpoints (*.safetensors *.ckpt *.pt *.bin);;All files (*)"
            chosen, _ = QFileDialog.getOpenFileName(self, "Add a model", "", kinds)
        if chosen:
            self.add(Path(chosen))

    def add(self, path: Path) -> None:
        """Add a model or a folder of models; a refused one says why, below the list, and
        a pickle gets the offer to convert it."""
        self.details.setPlainText(f"Reading {path}…")
        self._offer_conversion(None)
        run_in_background(
            self.core.engine,
            self,
            lambda: self.core.add_model(path),
            lambda found: self._added(path, found),
            lambda error: self._refused_model(path, error),
        )

    def _added(self, path: Path, found: ModelFile | None, note: str = "") -> None:
        what = f"the folder {path}" if found is None else f"{found.name} ({found.format})"
        self.details.setPlainText(f"{note}Added {what}.")
        self.refresh()

    def _refused_model(self, path: Path, error: BaseException) -> None:
        pickle = isinstance(error, PickleRefused)
        offer = (
            "\n\nOr press Convert to safetensors: it reads the tensors only and adds the copy."
            if pickle
            else ""
        )
        self.details.setPlainText(f"Not added: {error}{offer}")
        self._offer_conversion(path if pickle else None)

    def _offer_conversion(self, path: Path | None) -> None:
        self._refused = path
        self.convert.setVisible(path is not None)

    def _convert_refused(self) -> None:
        from studio.core.model_convert import convert_pickle

        source = self._refused
        if source is None:
            return
        self._offer_conversion(None)
        self.details.setPlainText(f"Converting {source.name}…")

        def convert_and_add() -> tuple[Path, ModelFile | None]:
            out = convert_pickle(source)
            return out, self.core.add_model(out)

        run_in_background(
            self.core.engine,
            self,
            convert_and_add,
            lambda done: self._added(
                done[0], done[1], f"Converted {source.name} to {done[0].name} (tensors only). "
            ),
            lambda error: self.details.setPlainText(f"Not converted: {error}"),
        )

    def refresh(self) -> None:
        folders = [str(self.core.paths.models), *self.core.settings.model_folders]
        self.folders.setText("Model folders: " + ";  ".join(folders))
        self.tree.clear()
        self.tree.addTopLevelItem(QTreeWidgetItem(["Reading the installed backends…"]))
        self._listing += 1
        run_in_background(self.core.engine, self, lambda: read_backends(self.core), self._show)

    def _show(self, reports: list[BackendReport]) -> None:
        self.reports = reports
        self.tree.clear()
        for report in reports:
            status = report.status + (f": {_short(report.error)}" if report.error else "")
            label = f"{report.name or report.id} ({report.id})" if report.id else report.name
            item = QTreeWidgetItem([label, status, report.device])
            item.setToolTip(1, report.error)
            for model in report.models:
                size = readable_size(model.size_bytes) if model.size_bytes else ""
                item.addChild(
                    QTreeWidgetItem(
                        [
                            model.name or model.ref,
                            "",
                            "",
                            model.label,
                            model.format,
                            size,
                            model.hash,
                        ]
                    )
                )
            self.tree.addTopLevelItem(item)
            item.setExpanded(True)
        for column in range(self.tree.columnCount()):
            self.tree.resizeColumnToContents(column)
        pending = [m.ref for r in reports for m in r.models if m.hash == PENDING]
        self._hash_next(list(dict.fromkeys(pending)), self._listing)

    def _hash_next(self, refs: list[str], listing: int) -> None:
        """Hash the models one at a time on the background pool (one worker: thumbnails
        keep the other), each shown as it is ready."""
        if not refs:
            return

        def hash_first() -> str:
            return hash_model(self.core, refs[0])

        def shown(digest: str) -> None:
            if listing == self._listing:  # else the tree shows another listing now
                self._show_hash(refs[0], digest)
                self._hash_next(refs[1:], listing)

        def failed(error: Exception) -> None:
            log.warning("cannot hash %s: %s", refs[0], error)
            shown("")

        run_in_background(self.core.engine, self, hash_first, shown, failed)

    def _show_hash(self, ref: str, digest: str) -> None:
        for row, report in enumerate(self.reports):
            for index, model in enumerate(report.models):
                if model.ref == ref:
                    report.models[index] = dataclasses.replace(model, hash=digest)
                    self.tree.topLevelItem(row).child(index).setText(HASH_COLUMN, digest)

    def _show_details(self, item: QTreeWidgetItem | None, _previous: object = None) -> None:
        index = self.tree.indexOfTopLevelItem(item) if item is not None else -1
        if 0 <= index < len(self.reports):
            report = self.reports[index]
            self.details.setPlainText(report.details or report.error or "No problem reported.")


def _short(text: str, limit: int = 70) -> str:
    """One line of at most `limit` characters (the whole text is in the tooltip)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
