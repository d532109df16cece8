"""Coefficient streams: the recording file format, its reader and CSV export."""
