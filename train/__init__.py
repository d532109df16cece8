"""Training, fitting and export code that produces facetrack's weights (imports facetrack, never the reverse)."""
