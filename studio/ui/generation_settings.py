"""The generation settings beside the prompt: backend and model, negative prompt, images
and candidates, seed (locked or random, reuse the last one), size, steps, guidance and
sampler.

The controls follow the chosen backend's capabilities and models (read off the GUI
thread: the first read imports the plugin's code; listing models reads the model
folders); what it cannot do is disabled, not hidden. With an input picture, the size
follows the picture's (`follow_picture`), as the command line's does.
"""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from studio.core.app import Core
from studio.core.backend import Capabilities, ModelInfo
from studio.core.request import SEED_RANGE, random_seed
from studio.ui.aspect import AspectPresets
from studio.ui.tasks import run_in_background

HINT_ROLE = Qt.ItemDataRole.UserRole + 1  # a model's tip: what a distilled one wants
DEFAULT_CAPABILITIES = Capabilities(
    min_size=64,
    max_size=2048,
    size_multiple=8,
    max_steps=150,
    max_guidance=30.0,
    negative_prompt=True,
)


class GenerationSettings(QWidget):
    capabilities_changed = Signal(object)  # Capabilities: the chosen backend's, once read

    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.capabilities = DEFAULT_CAPABILITIES  # the chosen backend's, once known
        self._picture: tuple[tuple[int, int], bool] | None = None  # its size, and masked?
        self._text_size: tuple[int, int] | None = None  # the size before a picture came
        self.core = core
        s = core.settings
        self.backend = QComboBox()
        for record in core.registry.records():
            self.backend.addItem(record.id, record.id)
        self.backend.setCurrentIndex(max(0, self.backend.findData(core.default_backend())))
        self.model = QComboBox()
        self.model.setToolTip("the backend's models: its own, or those in your model folders")
        self.model_hint = QLabel(wordWrap=True)  # what a distilled model wants
        self.model_hint.hide()
        self._wanted_model = s.model  # chosen once the backend's models are listed
        self.sampler = QComboBox()
        self._wanted_sampler = s.sampler
        self.negative = QLineEdit()
        self.negative.setPlaceholderText("what to leave out")
        self.count = _spin(1, 64, s.count, "images shown")
        self.candidates = _spin(
            1, 256, s.candidates, "samples drawn and ranked; the best are shown"
        )
        self.seed = QLineEdit()
        self.seed.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{0,10}")))
        self.seed.setPlaceholderText("random")
        self.seed_lock = QToolButton(checkable=True, text="Lock")
        self.seed_lock.setToolTip(
            "Locked: every generation uses this seed. Unlocked: a new random seed each time."
        )
        self.reuse_seed = QToolButton(text="Reuse")
        self.reuse_seed.setToolTip("Lock the seed of the last result")
        self.reuse_seed.setEnabled(False)
        # Wide ranges until the backend's capabilities narrow them (keeping the values).
        self.width_box = _spin(1, 8192, s.width, "width in pixels")
        self.height_box = _spin(1, 8192, s.height, "height in pixels")
        self.steps = _spin(0, 1000, s.steps, "0: the backend's default")
        self.steps.setSpecialValueText("default")
        self.guidance = QDoubleSpinBox(decimals=1, singleStep=0.5, maximum=100.0, value=s.guidance)
        self.guidance.setSpecialValueText("default")
        self.guidance.setToolTip("classifier-free guidance scale; 0: the backend's default")

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.seed_lock)
        seed_row.addWidget(self.reuse_seed)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_box)
        size_row.addWidget(self.height_box)
        self.aspect = AspectPresets()  # its model and input picture: see MainWindow
        self.aspect.size_chosen.connect(self.width_box.setValue)
        self.aspect.size_chosen.connect(lambda _w, h: self.height_box.setValue(h))
        size_row.addWidget(self.aspect)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Backend", self.backend)
        form.addRow("Model", self.model)
        form.addRow("", self.model_hint)
        form.addRow("Negative", self.negative)
        form.addRow("Images", self.count)
        form.addRow("Candidates", self.candidates)
        form.addRow("Seed", seed_row)
        form.addRow("Size", size_row)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Sampler", self.sampler)

        self._last_seed: int | None = None
        self.backend.currentIndexChanged.connect(self._read_capabilities)
        self.model.activated.connect(lambda _: self._choose_model())
        self.model.currentIndexChanged.connect(lambda _: self._show_model_hint())
        self.sampler.activated.connect(lambda _: self._choose_sampler())
        self.count.valueChanged.connect(lambda n: self.candidates.setMinimum(n))
        self.reuse_seed.clicked.connect(self._reuse_last_seed)
        self._read_capabilities()

    # -- what the request gets --------------------------------------------------------

    def backend_id(self) -> str:
        return self.backend.currentData() or ""

    def request_fields(self) -> dict[str, object]:
        """The fields of a request from these controls (a new seed unless locked)."""
        seed = int(self.seed.text()) if self.seed_lock.isChecked() and self.seed.text() else None
        if seed is None:
            seed = random_seed()
            self.seed.setText(str(seed))  # shown, so it can be locked afterwards
        sampler = self.sampler.currentText() if self.sampler.isEnabled() else ""
        return {
            "backend": self.backend_id(),
            "model": self.model.currentData() or "",
            "options": {"sampler": sampler} if sampler else {},
            "negative_prompt": self.negative.text() if self.negative.isEnabled() else "",
            "count": self.count.value(),
            "candidates": max(self.count.value(), self.candidates.value())
            if self.candidates.isEnabled()
            else self.count.value(),
            "seed": seed % SEED_RANGE,
            "width": self.width_box.value(),
            "height": self.height_box.value(),
            "steps": self.steps.value(),
            "guidance": self.guidance.value(),
        }

    def remember(self) -> None:
        """Keep these settings as the defaults of the next session."""
        s = self.core.settings
        s.backend, s.count = self.backend_id(), self.count.value()
        s.model, s.sampler = self.model.currentData() or "", self.sampler.currentText()
        s.candidates = self.candidates.value()
        if self._picture is None:  # a picture's size is not the next session's default
            s.width, s.height = self.width_box.value(), self.height_box.value()
        s.steps, s.guidance = self.steps.value(), self.guidance.value()
        self.core.settings.save(self.core.paths.settings_file)

    def set_last_seed(self, seed: int) -> None:
        self._last_seed = seed
        self.reuse_seed.setEnabled(True)

    def apply_request(self, request) -> None:
        """Take every setting of an earlier request (reuse settings)."""
        self._wanted_model = request.model
        self._wanted_sampler = str(request.options.get("sampler", ""))
        index = self.backend.findData(request.backend)
        if index >= 0:
            self.backend.setCurrentIndex(index)
        _choose(self.model, self._wanted_model, by_data=True)
        _choose(self.sampler, self._wanted_sampler)
        self.negative.setText(request.negative_prompt)
        self.count.setValue(request.count)
        self.candidates.setValue(max(request.count, request.candidates))
        self.seed.setText(str(request.seed))
        self.seed_lock.setChecked(True)
        self.width_box.setValue(request.width)
        self.height_box.setValue(request.height)
        self.steps.setValue(request.steps)
        self.guidance.setValue(request.guidance)

    # -- capabilities -----------------------------------------------------------------

    def _read_capabilities(self) -> None:
        backend_id = self.backend_id()
        if not backend_id:
            return

        def read() -> tuple[Capabilities, list[ModelInfo]]:
            backend = self.core.registry.get(backend_id)
            return backend.capabilities(), backend.models()

        run_in_background(  # the first call imports the plugin: never on the GUI thread
            self.core.engine,
            self,
            read,
            lambda found: self._apply_capabilities(backend_id, *found),
            lambda _error: self._apply_capabilities(backend_id, None, []),  # generating says why
        )

    def _apply_capabilities(
        self, backend_id: str, capabilities: Capabilities | None, models: list[ModelInfo]
    ) -> None:
        if backend_id != self.backend_id():
            return  # the user has picked another backend meanwhile
        self.model.clear()
        for model in models:
            self.model.addItem(model.name or model.ref, model.ref)
            parts = (model.label, model.format, model.hash, model.description)
            details = ", ".join(x for x in parts if x)
            self.model.setItemData(self.model.count() - 1, details, Qt.ItemDataRole.ToolTipRole)
            self.model.setItemData(self.model.count() - 1, model.description, HINT_ROLE)
        self.model.setEnabled(bool(models))
        _choose(self.model, self._wanted_model, by_data=True)
        c = capabilities or DEFAULT_CAPABILITIES
        self.capabilities = c
        self.sampler.clear()
        self.sampler.addItems(list(c.samplers))
        self.sampler.setEnabled(bool(c.samplers))
        _choose(self.sampler, self._wanted_sampler)
        self.negative.setEnabled(c.negative_prompt)
        self.count.setMaximum(c.max_count)
        self.candidates.setMaximum(c.max_candidates)
        self.candidates.setEnabled(c.ranks)
        self._size_ranges()
        self.steps.setMaximum(c.max_steps)
        self.steps.setEnabled(c.max_steps > 0)
        self.guidance.setMaximum(c.max_guidance)
        self.guidance.setEnabled(c.max_guidance > 0)
        self.capabilities_changed.emit(c)

    def _size_ranges(self) -> None:
        c = self.capabilities
        largest = (c.max_picture_size or c.max_size) if self._picture else c.max_size
        sizes = c.fixed_sizes or ((c.min_size, c.min_size), (largest, largest))
        for box, axis in ((self.width_box, 0), (self.height_box, 1)):
            box.setRange(min(s[axis] for s in sizes), max(s[axis] for s in sizes))
            box.setSingleStep(max(1, c.size_multiple))
            box.setEnabled(box.minimum() != box.maximum())

    def follow_picture(self, size: tuple[int, int] | None, masked: bool = False) -> None:
        """Results the size of the input picture `size` (None: no picture: the size set
        before it came back): exactly with a mask where the backend allows, else snapped
        to its size multiple, and within its largest."""
        if size is None:
            self._picture = None
            self._size_ranges()
            if self._text_size is not None:
                self.width_box.setValue(self._text_size[0])
                self.height_box.setValue(self._text_size[1])
                self._text_size = None
            return
        if self._text_size is None:
            self._text_size = (self.width_box.value(), self.height_box.value())
        self._picture = (size, masked)
        self._size_ranges()
        fitted = picture_size(self.capabilities, size, masked)
        if fitted is not None:
            self.width_box.setValue(fitted[0])
            self.height_box.setValue(fitted[1])

    def _choose_model(self) -> None:  # the user's pick, kept across refreshes
        self._wanted_model = self.model.currentData() or ""

    def _show_model_hint(self) -> None:
        hint = self.model.currentData(HINT_ROLE) or ""
        self.model_hint.setText(f"Tip: {hint}." if hint else "")
        self.model_hint.setVisible(bool(hint))

    def _choose_sampler(self) -> None:
        self._wanted_sampler = self.sampler.currentText()

    def _reuse_last_seed(self) -> None:
        if self._last_seed is not None:
            self.seed.setText(str(self._last_seed))
            self.seed_lock.setChecked(True)


def picture_size(c: Capabilities, size: tuple[int, int], masked: bool) -> tuple[int, int] | None:
    """The result size for a picture of `size` (None: the backend's fixed sizes stay).
    With a mask, the picture's own size where the backend scales its results to any size
    (a photo stays its size); otherwise snapped to the size multiple as the command line
    does. Shrunk, keeping its shape, to the backend's largest."""
    if c.fixed_sizes:
        return None
    largest = c.max_picture_size or c.max_size
    shrink = min(1.0, largest / max(size))
    width, height = (side * shrink for side in size)
    if masked and (c.max_picture_size > 0 or c.size_multiple <= 1):
        return tuple(max(c.min_size, min(largest, round(s))) for s in (width, height))
    step = max(1, c.size_multiple)
    snapped = (max(step, round(s / step) * step) for s in (width, height))
    top = largest // step * step  # rounding up must not pass the largest
    return tuple(max(c.min_size, min(top, s)) for s in snapped)


def _choose(box: QComboBox, wanted: str, by_data: bool = False) -> None:
    """Select `wanted` if the box has it (else keep the first item)."""
    index = box.findData(wanted) if by_data else box.findText(wanted)
    if wanted and index >= 0:
        box.setCurrentIndex(index)


def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox(minimum=low, maximum=max(low, high))
    box.setValue(value)
    box.setToolTip(tip)
    return box
