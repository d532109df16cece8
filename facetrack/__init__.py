"""facetrack: real-time monocular 3D face reconstruction with a self-supervised multi-level face model."""

__version__ = "0.1.0"
