"""The desktop app: capture thread -> inference thread -> moderngl viewport, plots, recording."""
