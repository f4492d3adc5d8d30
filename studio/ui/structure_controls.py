"""Keep the structure: a ControlNet holds the results to the input picture's lines.

With a ControlNet in the library for the chosen model's family, a switch under the
picture makes a control map from it (canny by default, or another of the shipped
preprocessors) and shows the map beside the switch; Generate then sends
`Control(model, picture, preprocess, weight, start, end)`. The preview map is made off
the GUI thread from a smaller copy (a photo's full map is the engine's to make).
Without a ControlNet, the switch says what to add and where.
"""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLabel,
    QToolButton,
    QWidget,
)

from studio.core import controls
from studio.core.addons import CONTROL_WEIGHT_RANGE, Control
from studio.core.app import Core
from studio.core.backend import ModelInfo
from studio.core.inputs import InputPicture
from studio.ui.bridge import to_qimage
from studio.ui.lora_picker import ADD_HINT
from studio.ui.model_context import ModelContext
from studio.ui.tasks import run_in_background

DEFAULT_PREPROCESS = "canny"
PREVIEW_SIDE = 512  # the map shown is made from a copy at most this large
MAP_SIDE = 128  # as shown beside the switch


def preview_map(picture: InputPicture, preprocess: str) -> QImage:
    """The control map of `picture` by `preprocess`, made from a smaller copy (off the
    GUI thread: opening a photo and finding its edges take a while)."""
    image = picture.open().convert("RGB")
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    made = controls.get(preprocess)(image, {})
    return to_qimage(made.convert("RGB"))


class StructureControls(QWidget):
    def __init__(self, core: Core, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self.picture: InputPicture | None = None
        self.controlnets: list[ModelInfo] = []
        self._ticket = 0  # only the newest map is shown
        self.switch = QCheckBox("Keep structure")
        self.switch.setToolTip("Hold the results to the picture's lines, by a ControlNet")
        self.reason = QLabel(wordWrap=True)
        self.model = QComboBox()  # which ControlNet, when the library has several
        self.preprocess = QComboBox()
        self.preprocess.addItems(controls.names())
        default = self.preprocess.findText(DEFAULT_PREPROCESS)
        self.preprocess.setCurrentIndex(max(0, default))
        self.preprocess.setToolTip("how the map is made from the picture (none: as it is)")
        self.map_view = QLabel()
        self.map_view.setFixedSize(MAP_SIDE, MAP_SIDE)
        self.map_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.advanced = QToolButton(text="Advanced", checkable=True)
        self.weight = _spin(*CONTROL_WEIGHT_RANGE, 1.0, "how strongly the map holds")
        self.start = _spin(0.0, 1.0, 0.0, "the fraction of the steps where it starts acting")
        self.end = _spin(0.0, 1.0, 1.0, "the fraction of the steps where it stops")
        self.advanced_box = QWidget()
        fold = QFormLayout(self.advanced_box)
        fold.setContentsMargins(0, 0, 0, 0)
        fold.addRow("Weight", self.weight)
        fold.addRow("Start", self.start)
        fold.addRow("End", self.end)
        self.advanced_box.hide()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.switch, 0, 0)
        grid.addWidget(self.preprocess, 0, 1)
        grid.addWidget(self.model, 0, 2)
        grid.addWidget(self.advanced, 0, 3)
        grid.addWidget(self.reason, 1, 0, 1, 4)
        grid.addWidget(self.advanced_box, 2, 0, 1, 4)
        grid.addWidget(self.map_view, 0, 4, 3, 1)
        grid.setColumnStretch(2, 1)
        self.switch.toggled.connect(self._show_state)
        self.preprocess.currentIndexChanged.connect(lambda _i: self._make_map())
        self.advanced.toggled.connect(self.advanced_box.setVisible)
        self.set_context(None)

    def set_context(self, context: ModelContext | None) -> None:
        """The chosen backend's ControlNets for its model's family (or why there are none)."""
        takes = context is not None and context.capabilities.controls > 0
        self.controlnets = context.addons_of("controlnet") if takes and context else []
        wanted = self.model.currentData()
        self.model.clear()
        for info in self.controlnets:
            self.model.addItem(info.name, info.ref)
        self.model.setCurrentIndex(max(0, self.model.findData(wanted)))
        self.model.setVisible(len(self.controlnets) > 1)
        if context is None:
            why = ""
        elif not takes:
            why = "Keep structure: this backend takes no ControlNet."
        elif not self.controlnets:
            family = context.family or "this model"
            why = (
                f"To keep the structure, add a ControlNet for {family} to the model "
                f"library: {ADD_HINT}"
            )
        else:
            why = ""
        self.reason.setText(why)
        self.switch.setEnabled(bool(self.controlnets))
        if not self.controlnets:
            self.switch.setChecked(False)
        self._show_state()

    def set_picture(self, picture: InputPicture | None) -> None:
        """The input picture (None: none, or one the backend does not take)."""
        self.picture = picture
        self._show_state()

    def active(self) -> bool:
        return self.switch.isChecked() and self.picture is not None and bool(self.controlnets)

    def request_fields(self) -> dict[str, object]:
        """`controls` for the request while the switch is on."""
        if not self.active() or self.picture is None:
            return {}
        control = Control(
            model=self.model.currentData() or self.controlnets[0].ref,
            image=self.picture,
            preprocess=self.preprocess.currentText(),
            weight=self.weight.value(),
            start=self.start.value(),
            end=min(1.0, max(self.end.value(), self.start.value() + 0.01)),
        )
        return {"controls": (control,)}

    def _show_state(self) -> None:
        self.setVisible(self.picture is not None and bool(self.reason.text() or self.controlnets))
        on = self.active()
        for widget in (self.preprocess, self.advanced, self.map_view):
            widget.setVisible(on)
        self.advanced_box.setVisible(on and self.advanced.isChecked())
        self._make_map()

    def _make_map(self) -> None:
        self._ticket += 1
        ticket, picture = self._ticket, self.picture
        if not self.active() or picture is None:
            self.map_view.clear()
            return
        name = self.preprocess.currentText()
        self.map_view.setText("making the map…")
        run_in_background(
            self.core.engine,
            self,
            lambda: preview_map(picture, name),
            lambda made: self._show_map(ticket, made),
            lambda error: self._show_map(ticket, None, str(error)),
        )

    def _show_map(self, ticket: int, made: QImage | None, error: str = "") -> None:
        if ticket != self._ticket:
            return  # another picture or preprocessor meanwhile
        if made is None:
            self.map_view.setText(f"no map: {error}")
            return
        pixmap = QPixmap.fromImage(made).scaled(
            MAP_SIDE, MAP_SIDE, Qt.AspectRatioMode.KeepAspectRatio
        )
        self.map_view.setPixmap(pixmap)
        self.map_view.setToolTip(f"the control map ({self.preprocess.currentText()})")


def _spin(low: float, high: float, value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox(decimals=2, singleStep=0.05, minimum=low, maximum=high, value=value)
    box.setToolTip(tip)
    return box
