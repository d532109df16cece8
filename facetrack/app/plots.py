"""Rolling plots beside the viewport: head pose, translation, chosen expressions, photometric error.

Each plot has labelled axes (time in the source's seconds) and its legend below the curves, not over them.
The values come from the frame's result (the head pose in the source camera: facetrack.track.head); live
tracking and playback fill them the same way.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from facetrack.app.packets import HEAT_MAX
from facetrack.render.images import heat_colors
from facetrack.render.reconstruction import LEVELS
from facetrack.track.tracker import FrameResult

PLOTTED_EXPRESSIONS = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L")
HISTORY = 300
REDRAW_S = 0.1  # curves are redrawn at most 10 times a second: software OpenGL repaints are costly
Z_SHOWN = 60  # cm added to the depth, a face's usual distance from a webcam: the three curves share one axis
COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4")


def plot_values(r: FrameResult) -> dict[str, dict[str, float]]:
    """Per plot, per curve: the frame's values (a missing curve has no value this frame)."""
    head = r.head
    pitch, yaw, roll = head.degrees
    t = head.translation_cm
    exp = r.recon.expressions
    return {"head pose": {"yaw": yaw, "pitch": pitch, "roll": roll},
            "translation": {"x": t[0], "y": t[1], f"z + {Z_SHOWN}": t[2] + Z_SHOWN},
            "expressions": {n: exp[n] for n in PLOTTED_EXPRESSIONS if n in exp},
            "photometric error": {lv: r.photometric[lv] for lv in LEVELS if lv in r.photometric}}


class Plots(QWidget):
    SPECS = (("head pose", "degrees", ("yaw", "pitch", "roll")), ("translation", "cm", ("x", "y", f"z + {Z_SHOWN}")),
             ("expressions", "weight", PLOTTED_EXPRESSIONS), ("photometric error", "RGB distance", LEVELS))

    def __init__(self, exp_names: list[str]) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self._drawn = 0.0
        self.curves: dict[str, dict[str, pg.PlotDataItem]] = {}
        self.data: dict[str, dict[str, deque]] = {}
        for title, unit, names in self.SPECS:
            names = tuple(n for n in names if title != "expressions" or n in exp_names)
            widget = pg.GraphicsLayoutWidget()
            widget.setMinimumHeight(165)
            widget.ci.layout.setContentsMargins(2, 2, 2, 2)
            widget.ci.layout.setSpacing(0)
            shown = f"{title} (while the overlay is on: E)" if title == "photometric error" else title
            plot = widget.addPlot(row=0, col=0, title=f"<span style='font-size:9pt'>{shown}</span>")
            plot.setLabel("left", unit)
            plot.setLabel("bottom", "time (s)")
            for axis in ("left", "bottom"):
                plot.getAxis(axis).enableAutoSIPrefix(False)
            plot.showGrid(y=True, alpha=0.2)
            if title == "expressions":
                plot.setYRange(0.0, 1.0)
            legend = pg.LegendItem(colCount=3, labelTextSize="7pt", verSpacing=-6)
            widget.addItem(legend, row=1, col=0)
            widget.ci.layout.setRowStretchFactor(0, 4)
            self.curves[title], self.data[title] = {}, {}
            for k, n in enumerate(names):
                curve = plot.plot(pen=pg.mkPen(COLORS[k % len(COLORS)], width=1.5), name=n)
                legend.addItem(curve, n)
                self.curves[title][n] = curve
                self.data[title][n] = deque(maxlen=HISTORY)
            lay.addWidget(widget)
        bar = (heat_colors(np.linspace(0, HEAT_MAX, 256), HEAT_MAX)[None].repeat(14, 0) * 255).astype(np.uint8)
        img = QImage(bar.tobytes(), 256, 14, 256 * 3, QImage.Format.Format_RGB888)
        scale = QLabel()
        scale.setPixmap(QPixmap.fromImage(img.copy()))
        lay.addWidget(QLabel(f"error overlay (E): 0 (dark) to {HEAT_MAX} (bright) RGB distance"))
        lay.addWidget(scale)

    def add(self, timestamp: float, r: FrameResult) -> None:
        for title, values in plot_values(r).items():
            for name, v in values.items():
                self.data[title][name].append((timestamp, float(v)))
        if time.monotonic() - self._drawn >= REDRAW_S:
            self.redraw()

    def redraw(self) -> None:
        self._drawn = time.monotonic()
        for title, series in self.data.items():
            for name, d in series.items():
                if d:
                    arr = np.asarray(d)
                    self.curves[title][name].setData(arr[:, 0], arr[:, 1])

    def clear(self) -> None:
        for title, series in self.data.items():
            for name, d in series.items():
                d.clear()
                self.curves[title][name].setData([], [])
