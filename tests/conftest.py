"""Shared fixtures: the face model built once per session from the ICT-FaceKit folder in $FACETRACK_ICT.

External data comes by environment variable, as in the app: FACETRACK_ICT (FaceXModel folder) and
FACETRACK_SHARED (the folder with faces/, videos/, aflw2000-sample/). `.ci/run` sets both.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from facetrack.model.facemodel import FaceModel


def _env_dir(name: str) -> Path:
    value = os.environ.get(name)
    if not value or not Path(value).is_dir():
        pytest.skip(f"set {name} to run this test (see README: Tests)")
    return Path(value)


@pytest.fixture(scope="session")
def ict_dir() -> Path:
    return _env_dir("FACETRACK_ICT")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _env_dir("FACETRACK_SHARED")


@pytest.fixture(scope="session")
def landmarker(shared_dir: Path) -> Path:
    """MediaPipe's face_landmarker.task from the shared folder (tests that need it skip without it)."""
    path = shared_dir / "mediapipe" / "face_landmarker.task"
    if not path.is_file():
        pytest.skip("no face_landmarker.task in FACETRACK_SHARED/mediapipe")
    return path


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model built through the real CLI into a session cache folder. Without $FACETRACK_ICT, the model
    already built in the user cache ($FACETRACK_HOME): a GPU machine may carry only that file."""
    from facetrack import paths
    from facetrack.cli import main

    if not os.environ.get("FACETRACK_ICT") and paths.model_path().is_file():
        return paths.model_path()
    ict_dir = _env_dir("FACETRACK_ICT")
    home = tmp_path_factory.mktemp("facetrack_home")
    out = home / "ict_face_model.npz"
    assert main(["model", "build", "--ict", str(ict_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def weights() -> Path:
    """The shipped weights folder (tests that need it skip when it has not been trained yet)."""
    from facetrack import paths

    folder = paths.weights_dir()
    if not (folder / "encoder.pt").is_file():
        pytest.skip("no trained weights in weights/")
    return folder


@pytest.fixture(scope="session")
def face(model_file: Path) -> FaceModel:
    return FaceModel.load(model_file)


class Receiver:
    """A python-osc UDP server on a free local port that keeps every message (address -> list of args)."""

    def __init__(self) -> None:
        self.got: dict[str, list[tuple]] = defaultdict(list)
        self.lock = threading.Lock()
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        d = Dispatcher()
        d.set_default_handler(self._keep)
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _keep(self, address: str, *args) -> None:  # returns None: python-osc would send a returned value back
        with self.lock:
            self.got[address].append(args)

    def wait_for(self, address: str, n: int, timeout: float = 5.0) -> list[tuple]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.got[address]) < n:
            time.sleep(0.02)
        return self.got[address]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
