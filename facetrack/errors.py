"""One exception type whose message is a complete one-line explanation for the user."""


class FacetrackError(Exception):
    """An expected failure (bad input, missing files); the CLI prints it on one line and exits 2."""
