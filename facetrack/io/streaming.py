"""Live coefficient streams over OSC/UDP: the VMC protocol for VTuber apps, or a plain OSC layout.

One bundle per tracked frame, sent from a thread of its own: `Streamer.send` only queues a few arrays, so
tracking never waits on the network. A receiver that is absent or goes away costs nothing (UDP) and its
error is counted and reported once.

VMC (`--vmc HOST:PORT`; VSeeFace, VNyan, Warudo receive on 39539 by default), per frame:
    /VMC/Ext/OK            1 (face tracked) or 0 (face lost: the last values are held)
    /VMC/Ext/T             time in seconds since the stream started
    /VMC/Ext/Blend/Val     name, value: the 52 ARKit shapes (facetrack.io.arkit), names in UpperCamelCase
                           as Perfect Sync avatars spell them (EyeBlinkLeft, JawOpen, ...)
    /VMC/Ext/Blend/Apply
    /VMC/Ext/Bone/Pos      "Head", position x y z (m), rotation x y z w: Unity's left-handed axes (x right,
                           y up, z forward out of the face); position relative to the first tracked frame
OSC (`--osc HOST:PORT`), per frame:
    /facetrack/time f, /facetrack/face i, /facetrack/head/rotation f f f (pitch, yaw, roll in degrees),
    /facetrack/head/quaternion f f f f (w x y z, head frame to camera), /facetrack/head/position f f f (cm,
    camera frame), /facetrack/blend/<ICT name> f for all 53 expressions.
Either stream can take the avatar's neutral face from the person (`--neutral SECONDS`, or the window's Stream
menu at any time; StreamNeutral): afterwards each expression's resting value reads 0.
"""

from __future__ import annotations

import queue
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import UDPClient

from facetrack.errors import FacetrackError
from facetrack.io.arkit import ARKIT_NAMES, arkit_matrix, upper_camel
from facetrack.io.recording import matrix_to_quaternion

VMC_PORT = 39539
PROTOCOLS = ("vmc", "osc")
NEUTRAL_SECONDS = 2.0  # the window's N (take the neutral face) looks at the face this long
MAX_NEUTRAL = 0.9  # a shape resting higher than this keeps a tenth of its range
NEUTRAL_TAKING, NEUTRAL_SET = "taking the neutral face: rest your face", "neutral face set"
MIRROR_X = np.diag([-1.0, 1.0, 1.0])  # the person's left (camera +x) is the avatar's left (Unity -x)


@dataclass(frozen=True)
class StreamTarget:
    protocol: str  # "vmc" or "osc"
    host: str
    port: int
    neutral_s: float = 0.0  # > 0: the stream's neutral face from its first this many seconds (StreamNeutral)

    @classmethod
    def parse(cls, protocol: str, text: str, neutral_s: float = 0.0) -> StreamTarget:
        """`HOST:PORT`, `:PORT` or `HOST` (the VMC port by default); a one-line error otherwise."""
        if protocol not in PROTOCOLS:
            raise FacetrackError(f"unknown stream protocol {protocol!r} (use one of {', '.join(PROTOCOLS)})")
        host, _, port = text.rpartition(":") if ":" in text else (text, "", str(VMC_PORT))
        try:
            number = int(port)
        except ValueError:
            number = -1
        if not 0 < number < 65536:
            raise FacetrackError(f"--{protocol} {text}: the port must be a number from 1 to 65535")
        return cls(protocol, host or "127.0.0.1", number, neutral_s)

    def __str__(self) -> str:
        return f"{self.protocol.upper()} -> {self.host}:{self.port}"


class StreamNeutral:
    """The avatar's neutral face, taken from the person: the per-shape median of the expressions over `seconds`
    of tracked frames (stream time, from the first), after which each weight is rescaled so that its resting
    value reads 0 and 1 still reads 1. Until then the weights go out as they are. Streams only, on request.

    Why: the tracker's own calibration lets identity absorb a person's resting face, so a neutral face reads
    near-zero expressions, except the eyes: each person's resting lid opening stays in eyeBlink so that it reads
    eye closure alike across people (narrow or heavy-lidded eyes rest at eyeBlink 0.2-0.7; README: Results).
    An avatar wants its eyes open at rest, and a user may rest with a slight smile or raised brows too."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.values: np.ndarray | None = None  # the resting weights, once taken
        self._start: float | None = None
        self._samples: list[np.ndarray] = []

    def __call__(self, t: float, present: bool, expressions: np.ndarray) -> np.ndarray:
        if self.values is not None:
            return np.clip((expressions - self.values) / (1.0 - self.values), 0.0, 1.0)
        if present:  # a lost face (its last values held) says nothing about the resting face
            self._start = t if self._start is None else self._start
            self._samples.append(np.asarray(expressions, np.float64))
            if t - self._start >= self.seconds:
                self.values = np.clip(np.median(self._samples, axis=0), 0.0, MAX_NEUTRAL)
                self._samples = []
        return expressions

    def status(self) -> str:
        return NEUTRAL_SET if self.values is not None else NEUTRAL_TAKING


@dataclass
class StreamFrame:
    """What one bundle carries, in plain arrays (the thread builds the OSC messages)."""

    timestamp: float
    present: bool
    expressions: np.ndarray  # (53,) ICT order
    head_rotation: np.ndarray  # (3, 3) canonical head frame -> camera frame
    rotation_deg: np.ndarray  # (3,) pitch, yaw, roll
    translation_cm: np.ndarray  # (3,) camera frame


class _Message:
    """One OSC message whose fixed part (address, type tags, string arguments) python-osc encodes once; per
    frame only the numeric arguments at its end (int32 or float32, big-endian) are filled in. A bundle is
    then a join of bytes, not 56 builder calls: streaming must not slow tracking down."""

    def __init__(self, address: str, fixed: tuple = (), kinds: str = "") -> None:
        m = OscMessageBuilder(address=address)
        for a in fixed:
            m.add_arg(a, "s")
        for k in kinds:
            m.add_arg(0 if k == "i" else 0.0, k)
        dgram = m.build().dgram
        self.head = struct.pack(">i", len(dgram)) + dgram[: len(dgram) - 4 * len(kinds)]
        self.format = ">" + kinds

    def encode(self, *values) -> bytes:
        return self.head + struct.pack(self.format, *values)


class _Bundle:
    """An OSC bundle (time tag: immediately) of pre-encoded elements, sent as it is by python-osc's client."""

    HEADER = OscBundleBuilder(IMMEDIATELY).build().dgram

    def __init__(self, elements: list[bytes]) -> None:
        self.dgram = self.HEADER + b"".join(elements)


class Streamer:
    """Sends one OSC bundle per frame to a target from its own thread."""

    def __init__(self, target: StreamTarget, exp_names: list[str], max_queue: int = 64) -> None:
        self.target, self.exp_names = target, list(exp_names)
        self._to_arkit = arkit_matrix(exp_names)
        if target.protocol == "vmc":
            self._head = [_Message("/VMC/Ext/OK", kinds="i"), _Message("/VMC/Ext/T", kinds="f")]
            self._blends = [_Message("/VMC/Ext/Blend/Val", (upper_camel(n),), "f").head for n in ARKIT_NAMES]
            self._tail = [_Message("/VMC/Ext/Blend/Apply"), _Message("/VMC/Ext/Bone/Pos", ("Head",), "fffffff")]
        else:
            self._head = [_Message("/facetrack/time", kinds="f"), _Message("/facetrack/face", kinds="i"),
                          _Message("/facetrack/head/rotation", kinds="fff"),
                          _Message("/facetrack/head/quaternion", kinds="ffff"),
                          _Message("/facetrack/head/position", kinds="fff")]
            self._blends = [_Message(f"/facetrack/blend/{n}", kinds="f").head for n in self.exp_names]
        try:
            self._client = UDPClient(target.host, target.port)
        except OSError as e:  # an unknown host name
            raise FacetrackError(f"cannot stream to {target.host}:{target.port}: {e.strerror or e}") from None
        self._queue: queue.Queue[StreamFrame | None] = queue.Queue(max_queue)
        self.neutral = StreamNeutral(target.neutral_s) if target.neutral_s > 0 else None
        self._neutral_asked = self._neutral_taken = 0  # calibrate() counts up; the thread follows
        self._neutral_seconds = NEUTRAL_SECONDS
        self._origin: np.ndarray | None = None
        self._t0: float | None = None
        self.bundles = self.messages = self.errors = self.dropped = 0
        self.last_error: str | None = None
        self._sent_at: deque[float] = deque(maxlen=120)
        self._thread = threading.Thread(target=self._run, name="facetrack-stream", daemon=True)
        self._thread.start()

    # -- the tracking side ---------------------------------------------------------------------------
    def send(self, frame: StreamFrame) -> None:
        """Queue a frame; never blocks (a full queue drops the frame and counts it)."""
        try:
            self._queue.put_nowait(frame)
        except queue.Full:
            self.dropped += 1

    def calibrate(self, seconds: float = NEUTRAL_SECONDS) -> None:
        """Take the avatar's neutral face (StreamNeutral) and the head position's zero (VMC) anew, from the next
        tracked frames. Called from another thread (the window): the stream's thread makes the change."""
        self._neutral_seconds = seconds
        self._neutral_asked += 1

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def rate(self) -> float:
        """Bundles per second over the last ones sent."""
        t = list(self._sent_at)
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def status(self) -> str:
        s = f"{self.target} · {self.rate():.0f} msg/s"
        if self._neutral_taken != self._neutral_asked:
            s += f" · {NEUTRAL_TAKING}"  # asked; the stream's thread starts on its next frame
        elif self.neutral is not None:
            s += f" · {self.neutral.status()}"
        if self.errors:
            s += f" · {self.errors} send errors ({self.last_error})"
        return s

    # -- the thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while (frame := self._queue.get()) is not None:
            bundle, n = self._bundle(frame)
            try:
                self._client.send(bundle)
            except OSError as e:  # no receiver (ICMP refused), no route, a full buffer: count, report once
                self.errors += 1
                if self.last_error is None:
                    print(f"facetrack: streaming to {self.target.host}:{self.target.port} failed: "
                          f"{e.strerror or e} (tracking goes on; the window shows the error count)")
                self.last_error = e.strerror or str(e)
                continue
            self.bundles += 1
            self.messages += n
            self._sent_at.append(time.perf_counter())

    def _bundle(self, f: StreamFrame) -> tuple[_Bundle, int]:
        if self._t0 is None:
            self._t0 = f.timestamp
        if self._neutral_taken != self._neutral_asked:
            self._neutral_taken = self._neutral_asked
            self.neutral, self._origin = StreamNeutral(self._neutral_seconds), None
        exp = f.expressions if self.neutral is None else self.neutral(f.timestamp, f.present, f.expressions)
        elements = self._vmc(f, exp) if self.target.protocol == "vmc" else self._osc(f, exp)
        return _Bundle(elements), len(elements)

    def _blend_elements(self, values: np.ndarray) -> list[bytes]:
        tails = np.asarray(values, ">f4").tobytes()
        return [h + tails[4 * k : 4 * k + 4] for k, h in enumerate(self._blends)]

    def _vmc(self, f: StreamFrame, exp: np.ndarray) -> list[bytes]:
        if self._origin is None and f.present:
            self._origin = f.translation_cm.copy()
        origin = self._origin if self._origin is not None else f.translation_cm
        R = MIRROR_X @ f.head_rotation @ MIRROR_X
        w, x, y, z = matrix_to_quaternion(R)
        px, py, pz = (MIRROR_X @ (f.translation_cm - origin)) / 100.0
        ok, t = self._head
        apply, bone = self._tail
        return [ok.encode(int(f.present)), t.encode(f.timestamp - self._t0),
                *self._blend_elements(np.clip(exp @ self._to_arkit, 0.0, 1.0)),
                apply.encode(), bone.encode(px, py, pz, x, y, z, w)]

    def _osc(self, f: StreamFrame, exp: np.ndarray) -> list[bytes]:
        t, face, rot, quat, pos = self._head
        return [t.encode(f.timestamp - self._t0), face.encode(int(f.present)), rot.encode(*f.rotation_deg),
                quat.encode(*matrix_to_quaternion(f.head_rotation)), pos.encode(*f.translation_cm),
                *self._blend_elements(exp)]
