"""The moderngl viewport inside a QOpenGLWidget: base and final level side by side.

Each half shows the input frame with the level drawn over it by the estimated camera, or (orbit view) the
level alone, turned with the mouse; "follow face" zooms both halves on the face (a person far from the camera
is otherwise a few dozen pixels of the view). View modes: shaded, albedo, geometry, wireframe; the
photometric-error heat map can be laid over any of them. Painting uploads the packet's ready arrays and
draws; nothing else.
"""

from __future__ import annotations

import math

import moderngl
import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtOpenGLWidgets import QOpenGLWidget

from facetrack.app.packets import VERTEX_FLOATS, VERTEX_FORMAT, Packet
from facetrack.render import glsl
from facetrack.render.reconstruction import LEVELS

MODES = ("shaded", "albedo", "geometry", "wireframe")
FOLLOW_CROPS = 1.6  # following the face, the view spans this many encoder crop boxes (the face about half of it)
FOLLOW_EASE = 0.3  # share of the way to the face's view taken per painted frame (no jump, no jitter)


def follow_view(cx: float, cy: float, side: float, width: int, height: int) -> np.ndarray:
    """(centre x, centre y, scale) in the frame's NDC showing a square of FOLLOW_CROPS * side pixels about
    (cx, cy), never zoomed out past the whole frame nor showing beyond its edges."""
    scale = float(np.clip(min(width, height) / (FOLLOW_CROPS * side), 1.0, 8.0))
    centre = np.array([2 * cx / width - 1, 1 - 2 * cy / height])
    return np.array([*np.clip(centre, -1 + 1 / scale, 1 - 1 / scale), scale])


def orbit_matrix(yaw: float, pitch: float, aspect: float, distance: float = 55.0) -> np.ndarray:
    """4x4 projection x view matrix: centred vertices turned by (yaw, pitch), seen from `distance` cm."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    R = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    view = np.eye(4)
    view[:3, :3] = R
    view[2, 3] = -distance
    f, near, far = 1 / math.tan(math.radians(15)), 5.0, 500.0
    proj = np.array([[f / aspect, 0, 0, 0], [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]])
    return proj @ view


class Viewport(QOpenGLWidget):
    def __init__(self, triangles: np.ndarray, n_vertices: int, parent=None) -> None:
        super().__init__(parent)
        self.triangles = np.ascontiguousarray(triangles, dtype=np.int32)
        self.n_vertices = n_vertices
        self.mode, self.overlay, self.orbit, self.follow = 0, False, False, False
        self.view = np.array([0.0, 0.0, 1.0])  # what is shown: centre and scale in the frame's NDC
        self.yaw, self.pitch = 0.5, 0.15
        self.packet: Packet | None = None
        self.ctx = None
        self._drag = None
        self.setMinimumSize(480, 240)

    # -- state -------------------------------------------------------------------------------------
    def set_packet(self, packet: Packet) -> None:
        self.packet = packet
        self.update()

    def set_mode(self, mode: int) -> None:
        self.mode = mode
        self.update()

    def toggle_overlay(self) -> None:
        self.overlay = not self.overlay
        self.update()

    def toggle_orbit(self) -> None:
        self.orbit = not self.orbit
        self.update()

    def toggle_follow(self) -> None:
        self.follow = not self.follow
        self.update()

    def _next_view(self, pk: Packet) -> np.ndarray:
        target = np.array([0.0, 0.0, 1.0])
        if self.follow and pk.result is not None:
            box = pk.result.box
            target = follow_view(box.cx, box.cy, box.side, *pk.size)
        self.view = self.view + FOLLOW_EASE * (target - self.view)
        if np.abs(target - self.view).max() > 1e-3:
            self.update()  # paint again until there (a paused or ended source sends no packets)
        return self.view

    # -- GL ------------------------------------------------------------------------------------------
    def initializeGL(self) -> None:
        self.ctx = moderngl.create_context()
        self.mesh_prog = self.ctx.program(vertex_shader=glsl.load("viewport.vert"),
                                          fragment_shader=glsl.load("viewport.frag"))
        self.bg_prog = self.ctx.program(vertex_shader=glsl.load("background.vert"),
                                        fragment_shader=glsl.load("background.frag"))
        quad = np.array([-1, -1, 1, -1, -1, 1, 1, 1], np.float32)
        self.bg_vao = self.ctx.vertex_array(self.bg_prog, [(self.ctx.buffer(quad.tobytes()), "2f", "in_pos")])
        self.ibo = self.ctx.buffer(self.triangles.tobytes())
        self.vbo = self.ctx.buffer(reserve=self.n_vertices * VERTEX_FLOATS * 4, dynamic=True)
        self.mesh_vao = self.ctx.vertex_array(self.mesh_prog, [(self.vbo, *VERTEX_FORMAT)], self.ibo)
        self.texture = None
        self._uploaded = None  # the frame now in the texture

    def _upload_frame(self, frame: np.ndarray) -> None:
        if self._uploaded is frame:
            return
        h, w = frame.shape[:2]
        if self.texture is None or self.texture.size != (w, h):
            if self.texture is not None:
                self.texture.release()
            self.texture = self.ctx.texture((w, h), 3, alignment=1)
            self.texture.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.texture.write(np.ascontiguousarray(frame))
        self._uploaded = frame

    def _rects(self, aspect: float) -> list[tuple[int, int, int, int]]:
        r = self.devicePixelRatio()
        W, H = int(self.width() * r), int(self.height() * r)
        half = W // 2
        w = min(half, int(H * aspect))
        h = int(w / aspect)
        return [(k * half + (half - w) // 2, (H - h) // 2, w, h) for k in range(2)]

    def paintGL(self) -> None:
        fbo = self.ctx.detect_framebuffer(self.defaultFramebufferObject())
        fbo.use()
        self.ctx.viewport = (0, 0, int(self.width() * self.devicePixelRatio()),
                             int(self.height() * self.devicePixelRatio()))
        self.ctx.clear(0.11, 0.11, 0.13, 1.0, depth=1.0)
        pk = self.packet
        if pk is None:
            return
        w, h = pk.size
        if pk.frame is not None:
            self._upload_frame(pk.frame)
        view = tuple(float(v) for v in self._next_view(pk))
        self.bg_prog["view"] = view
        self.mesh_prog["view"] = view
        for rect, level in zip(self._rects(w / h), LEVELS, strict=True):
            self.ctx.viewport = rect
            self.ctx.disable(moderngl.DEPTH_TEST)
            if not self.orbit and pk.frame is not None:
                self.texture.use(0)
                self.bg_prog["frame"] = 0
                self.bg_prog["dim"] = 1.0
                self.bg_vao.render(moderngl.TRIANGLE_STRIP)
            mesh = pk.meshes.get(level)
            if mesh is None:
                continue
            self.vbo.write(mesh)
            self.ctx.enable(moderngl.DEPTH_TEST)
            self.ctx.wireframe = self.mode == 3
            self.mesh_prog["orbit"] = int(self.orbit)
            self.mesh_prog["orbit_mvp"].write(orbit_matrix(self.yaw, self.pitch, rect[2] / rect[3]).T
                                              .astype(np.float32).tobytes())
            self.mesh_prog["mode"] = self.mode
            self.mesh_prog["overlay"] = 0.8 if self.overlay else 0.0
            self.mesh_prog["opacity"] = 1.0
            self.mesh_vao.render(moderngl.TRIANGLES)
            self.ctx.wireframe = False

    # -- mouse: orbit ------------------------------------------------------------------------------------
    def mousePressEvent(self, e) -> None:
        if e.button() == Qt.MouseButton.LeftButton:
            self._drag = e.position()

    def mouseMoveEvent(self, e) -> None:
        if self._drag is not None and self.orbit:
            d = e.position() - self._drag
            self._drag = e.position()
            self.yaw += d.x() * 0.01
            self.pitch = max(-1.4, min(1.4, self.pitch + d.y() * 0.01))
            self.update()

    def mouseReleaseEvent(self, e) -> None:
        self._drag = None
