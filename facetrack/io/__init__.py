"""What comes in and goes out: frame sources, recordings, exports."""
