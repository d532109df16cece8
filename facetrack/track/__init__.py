"""Per-frame tracking: the tracker, the one pipeline from frames to results, photos one by one."""
