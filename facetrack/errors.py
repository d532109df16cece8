"""One exception type whose message is a complete one-line explanation for the user."""


class FacetrackError(Exception):
    """An expected failure (bad input, missing files); the CLI prints it on one line and exits 2."""


def one_line(e: BaseException) -> str:
    """An unexpected exception's message on one line (OpenCV and MediaPipe write several), for the banner."""
    return " ".join(str(e).split()) or type(e).__name__
