"""CPU rasterizer: moderngl on a standalone EGL context (Mesa llvmpipe without a GPU).

Used for images people look at and for synthetic data; not differentiable. It takes the same clip
coordinates as the nvdiffrast path and returns per-pixel attributes and coverage, top row first.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.render import glsl

MAX_ATTRS = 7  # two RGBA targets, one channel kept for coverage


BEFORE_RENDER: list[Callable[[], None]] = []
"""Called before each render: a GUI toolkit that leaves its own GL context current on the thread registers a
release here (the app does), since draws on our EGL context go nowhere while another context is current."""


def _before_render() -> None:
    for hook in BEFORE_RENDER:
        hook()


class GLRasterizer:
    """Renders triangles with up to 7 float attributes per vertex into a (H, W) float image."""

    def __init__(self, width: int, height: int, supersample: int = 2) -> None:
        self.width, self.height, self.ss = width, height, supersample
        _before_render()
        try:
            import moderngl

            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as e:  # noqa: BLE001 - any EGL failure means the same thing to the user
            raise FacetrackError(f"cannot create an OpenGL (EGL) context for CPU rendering: {e}") from None
        self.prog = self.ctx.program(vertex_shader=glsl.load("raster.vert"), fragment_shader=glsl.load("raster.frag"))
        size = (width * supersample, height * supersample)
        self.targets = [self.ctx.texture(size, 4, dtype="f4") for _ in range(2)]
        self.depth = self.ctx.depth_renderbuffer(size)
        self.fbo = self.ctx.framebuffer(color_attachments=self.targets, depth_attachment=self.depth)

    @classmethod
    def for_camera(cls, camera, supersample: int = 2) -> GLRasterizer:
        """A rasterizer of the camera's image size (the crop)."""
        return cls(camera.width, camera.height, supersample)

    def render(self, clip: np.ndarray, triangles: np.ndarray, attrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(V, 4) clip coordinates, (T, 3) triangles, (V, C) attributes -> (H, W, C) attributes
        premultiplied by coverage, and (H, W) coverage in [0, 1] (fractional at edges when supersampling)."""
        C = attrs.shape[1]
        if C > MAX_ATTRS:
            raise ValueError(f"at most {MAX_ATTRS} attributes, got {C}")
        packed = np.zeros((len(clip), 8), np.float32)
        packed[:, :C] = attrs
        packed[:, C] = 1.0
        data = np.concatenate([np.asarray(clip, np.float32), packed], axis=1)
        _before_render()
        with self.ctx:  # make this context current: another rasterizer may own the thread's context
            return self._render(data, triangles, C)

    def _render(self, data: np.ndarray, triangles: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
        import moderngl

        vbo = self.ctx.buffer(np.ascontiguousarray(data).tobytes())
        ibo = self.ctx.buffer(np.ascontiguousarray(triangles, dtype=np.int32).tobytes())
        vao = self.ctx.vertex_array(self.prog, [(vbo, "4f 4f 4f", "in_clip", "in_a0", "in_a1")], ibo)
        try:
            self.fbo.use()
            self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            self.ctx.enable(moderngl.DEPTH_TEST)
            self.ctx.disable(moderngl.CULL_FACE)
            vao.render(moderngl.TRIANGLES)
            out = np.concatenate([np.frombuffer(t.read(), np.float32).reshape(
                self.height * self.ss, self.width * self.ss, 4) for t in self.targets], axis=-1)
        finally:
            for obj in (vao, ibo, vbo):
                obj.release()
        if self.ss > 1:
            out = out.reshape(self.height, self.ss, self.width, self.ss, 8).mean(axis=(1, 3))
        return out[..., :C].copy(), out[..., C].copy()

    def release(self) -> None:
        self.ctx.release()
