"""Streaming (VMC and plain OSC to a real UDP receiver) and the avatar exports (Live Link CSV, glTF, OBJs)."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import numpy as np
import pytest

from facetrack.errors import FacetrackError
from facetrack.io.arkit import ARKIT_NAMES, arkit_matrix, to_arkit, upper_camel
from facetrack.io.streaming import StreamTarget

FRAMES = 40


@pytest.fixture(scope="module")
def tracker(weights: Path, model_file: Path, landmarker: Path):
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.track.tracker import Tracker

    return Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker)


def _stream_video(tracker, shared_dir: Path, target: StreamTarget, frames: int = FRAMES) -> dict:
    from facetrack.io.sources import open_source
    from facetrack.io.streaming import Streamer
    from facetrack.track.pipeline import Pipeline, run_headless

    pipeline = Pipeline(tracker)
    pipeline.reset()
    streamer = Streamer(target, tracker.model.exp_names)
    figures = run_headless(pipeline, open_source(str(shared_dir / "videos" / "liveportrait_d0.mp4")), None, frames,
                           quiet=True, streamer=streamer)
    return figures


def test_arkit_map_covers_all_52_names(face) -> None:
    names = [str(n) for n in face.exp_names]
    M = arkit_matrix(names)
    assert M.shape == (53, 52) and len(set(ARKIT_NAMES)) == 52
    used = M.sum(0)
    assert np.allclose(used[[ARKIT_NAMES.index(n) for n in ARKIT_NAMES if n != "tongueOut"]], 1.0)
    assert used[ARKIT_NAMES.index("tongueOut")] == 0
    v = np.zeros(53)
    v[names.index("browInnerUp_L")], v[names.index("jawRight")], v[names.index("eyeBlink_R")] = 0.6, 0.3, 0.9
    a = to_arkit(names, v)
    assert a[ARKIT_NAMES.index("browInnerUp")] == pytest.approx(0.3)  # the mean of the ICT pair
    assert a[ARKIT_NAMES.index("jawRight")] == pytest.approx(0.3) and a[ARKIT_NAMES.index("jawLeft")] == 0
    assert a[ARKIT_NAMES.index("eyeBlinkRight")] == pytest.approx(0.9)
    with pytest.raises(FacetrackError, match="no expression"):
        arkit_matrix(names[1:])


def test_vmc_stream_of_a_shared_video(tracker, shared_dir: Path, receiver) -> None:
    """One bundle per tracked frame: 52 ARKit names in [0, 1], Apply, a unit head quaternion, OK and T."""
    figures = _stream_video(tracker, shared_dir, StreamTarget("vmc", "127.0.0.1", receiver.port))
    assert figures["frames"] == FRAMES and figures["stream"]["bundles"] == FRAMES
    assert figures["stream"]["errors"] == 0 and figures["stream"]["dropped"] == 0
    blends = receiver.wait_for("/VMC/Ext/Blend/Val", 52 * FRAMES)
    assert len(blends) == 52 * FRAMES
    assert {name for name, _ in blends} == {upper_camel(n) for n in ARKIT_NAMES}
    values = np.array([v for _, v in blends]).reshape(FRAMES, 52)
    assert (values >= 0).all() and (values <= 1).all()
    jaw = values[:, ARKIT_NAMES.index("jawOpen")]
    assert jaw.std() > 0.01  # the talking head's mouth moves in the stream
    assert len(receiver.wait_for("/VMC/Ext/Blend/Apply", FRAMES)) == FRAMES
    heads = receiver.wait_for("/VMC/Ext/Bone/Pos", FRAMES)
    assert len(heads) == FRAMES and all(h[0] == "Head" for h in heads)
    q = np.array([h[4:8] for h in heads])
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert receiver.wait_for("/VMC/Ext/OK", FRAMES) == [(1,)] * FRAMES
    # message rate = tracking rate: one timestamp per frame, spaced like the video's frames
    t = np.array([a[0] for a in receiver.wait_for("/VMC/Ext/T", FRAMES)])
    assert len(t) == FRAMES and np.allclose(np.diff(np.sort(t)), 1 / 25, atol=2e-3)


def test_osc_layout_through_the_cli(model_file: Path, weights: Path, shared_dir: Path, landmarker: Path,
                                    receiver, capsys) -> None:
    from facetrack.cli import main

    n = 12
    assert main(["run", "--no-gui", "--source", str(shared_dir / "videos" / "liveportrait_d0.mp4"), "--max-frames",
                 str(n), "--osc", f"127.0.0.1:{receiver.port}", "--neutral", "0.2", "--model", str(model_file),
                 "--landmarker", str(landmarker)]) == 0
    out = capsys.readouterr().out
    assert f"streamed {n} frames" in out and "the stream's neutral face is set" in out  # 12 frames are 0.44 s
    assert len(receiver.wait_for("/facetrack/blend/jawOpen", n)) == n
    assert len([a for a in receiver.got if a.startswith("/facetrack/blend/")]) == 53
    rot = receiver.wait_for("/facetrack/head/rotation", n)
    q = np.array(receiver.wait_for("/facetrack/head/quaternion", n))
    assert len(rot) == n and np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert len(receiver.wait_for("/facetrack/face", n)) == n and len(receiver.wait_for("/facetrack/time", n)) == n


def test_absent_receiver_costs_nothing(tracker, shared_dir: Path, capsys) -> None:
    """Nobody listens on the port: tracking finishes every frame; a send error, if the system reports one, is
    printed once."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    figures = _stream_video(tracker, shared_dir, StreamTarget("vmc", "127.0.0.1", port), frames=15)
    assert figures["frames"] == 15 and figures["faces"] == 15
    assert figures["stream"]["bundles"] + figures["stream"]["errors"] == 15
    assert capsys.readouterr().out.count("streaming to") <= 1


def test_timecode() -> None:
    from facetrack.io.livelink import timecode

    assert timecode(0.0, 30) == "00:00:00:00.000" and timecode(3661.5, 30) == "01:01:01:15.500"
    assert timecode(59.999, 60) == "00:00:59:59.999"


@pytest.mark.parametrize("text", ["host:0", "host:70000", "host:abc", ":-1"])
def test_bad_stream_targets_are_one_line_errors(text: str) -> None:
    with pytest.raises(FacetrackError, match="port must be"):
        StreamTarget.parse("vmc", text)
    assert StreamTarget.parse("vmc", "studio-pc") == StreamTarget("vmc", "studio-pc", 39539)
    assert StreamTarget.parse("osc", ":9000") == StreamTarget("osc", "127.0.0.1", 9000)


def test_cli_rejects_two_streams_and_bad_ports(capsys) -> None:
    from facetrack.cli import main

    assert main(["run", "--no-gui", "--vmc", "a:1", "--osc", "b:2"]) == 2
    assert main(["run", "--no-gui", "--vmc", "localhost:99999"]) == 2
    assert main(["run", "--no-gui", "--neutral", "2"]) == 2
    err = capsys.readouterr().err
    assert "choose one stream" in err and "port must be" in err and "--neutral takes the neutral face" in err
    assert StreamTarget.parse("osc", ":9000", 1.5).neutral_s == 1.5


def test_stream_neutral_rests_at_zero() -> None:
    """The resting weights, the median over the first seconds of tracked frames, read 0 afterwards and 1 stays 1;
    frames of a lost face do not count; until it is set the weights go out as they are."""
    from facetrack.io.streaming import MAX_NEUTRAL, StreamNeutral

    rng = np.random.default_rng(0)
    rest = np.array([0.5, 0.05, 0.0, 0.97])  # narrow eyes, a slightly open mouth, nothing, a shape stuck high
    neutral = StreamNeutral(1.0)
    for k in range(31):  # 1.2 s at 25 FPS, a lost face in the middle
        t, present = k / 25, k != 10
        v = np.clip(rest + rng.normal(0, 0.02, 4), 0, 1) if present else np.ones(4)
        out = neutral(t, present, v)
        if neutral.values is None or k == 25:  # raw until the frame that completes the second
            assert out is v
    assert neutral.values == pytest.approx([0.5, 0.05, 0.0, MAX_NEUTRAL], abs=0.02)
    assert neutral(2.0, True, rest.copy()) == pytest.approx([0, 0, 0, 0.7], abs=0.05)
    assert neutral(2.0, True, np.ones(4)) == pytest.approx(np.ones(4))
    assert neutral(2.0, True, np.array([0.75, 0.525, 0.4, 0.0]))[:3] == pytest.approx([0.5, 0.5, 0.4], abs=0.03)


def test_streamer_takes_the_neutral_face_when_asked(face) -> None:
    """--neutral at the start, and calibrate() at any time (the window's N): the bundles' eyeBlink reads the
    resting lids as 0 once the seconds have passed, and a new neutral face replaces the old one."""
    from pythonosc.osc_bundle import OscBundle

    from facetrack.io.streaming import Streamer, StreamFrame

    names = [str(n) for n in face.exp_names]
    blink = names.index("eyeBlink_L")

    def frame(t: float, value: float) -> StreamFrame:
        exp = np.zeros(53, np.float32)
        exp[blink] = value
        return StreamFrame(t, True, exp, np.eye(3), np.zeros(3), np.array([0.0, 0.0, -110.0]))

    def sent(st: Streamer, f: StreamFrame) -> float:
        return {m.address + m.params[0]: m.params[1] for m in OscBundle(st._bundle(f)[0].dgram)
                if m.address == "/VMC/Ext/Blend/Val"}["/VMC/Ext/Blend/ValEyeBlinkLeft"]

    st = Streamer(StreamTarget("vmc", "127.0.0.1", 9, neutral_s=0.5), names)
    try:
        assert [sent(st, frame(k / 10, 0.4)) for k in range(5)] == pytest.approx([0.4] * 5)  # as they are
        assert sent(st, frame(0.5, 0.4)) == pytest.approx(0.4) and "neutral face set" in st.status()
        assert sent(st, frame(0.6, 0.4)) == pytest.approx(0.0, abs=1e-6)  # resting eyes: open
        assert sent(st, frame(0.7, 1.0)) == pytest.approx(1.0)  # a blink still closes them
        st.calibrate(0.2)  # another person, or the same one resting differently
        assert sent(st, frame(0.8, 0.1)) == pytest.approx(0.1) and "taking the neutral face" in st.status()
        sent(st, frame(1.05, 0.1))  # 0.25 s after the first: set
        assert sent(st, frame(1.1, 0.1)) == pytest.approx(0.0, abs=1e-6)
        assert sent(st, frame(1.2, 0.4)) == pytest.approx(0.3 / 0.9, abs=1e-6)
    finally:
        st.close()


# -- exports ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recording(tracker, shared_dir: Path, tmp_path_factory) -> Path:
    """A real recording of a shared video, with two frames marked face-lost at the end (held parameters)."""
    from facetrack.io.sources import open_source
    from facetrack.track.pipeline import RECORDING_NEEDS, Pipeline, record

    path = tmp_path_factory.mktemp("rec") / "talk.ftrec"
    pipeline = Pipeline(tracker)
    pipeline.reset()
    source = open_source(str(shared_dir / "videos" / "liveportrait_d3.mp4"))
    rec = pipeline.recorder(path, source)
    last = None
    for frame, _ in zip(source, range(30), strict=False):
        r = pipeline(frame, RECORDING_NEEDS)
        record(rec, frame, r)
        last = frame, r
    frame, r = last
    for k in (1, 2):  # the face leaves: the last parameters held, flagged
        rec.write(frame.timestamp + k / 25, frame.index + k, r.x, {}, r.box, frame.frame_size, present=False)
    rec.close()
    return path


def test_livelink_csv(recording: Path, tmp_path: Path) -> None:
    from facetrack.io.livelink import COLUMNS, export_livelink_csv
    from facetrack.io.recording import read_recording
    from facetrack.model.correspondence import Correspondence

    out = tmp_path / "take.csv"
    written, left_out = export_livelink_csv(read_recording(recording), out, Correspondence.load().head_frame)
    assert (written, left_out) == (30, 2)
    rows = list(csv.reader(out.open()))
    assert tuple(rows[0]) == COLUMNS and len(COLUMNS) == 63 and COLUMNS[2] == "EyeBlinkLeft"
    assert len(rows) == 31 and all(r[1] == "61" for r in rows[1:])
    assert rows[1][0] == "00:00:00:00.000" and rows[2][0] == "00:00:00:01.033"  # 30 fps
    assert rows[30][0] == "00:00:00:29.967"
    blend = np.array([[float(v) for v in r[2:54]] for r in rows[1:]])
    assert (blend >= 0).all() and (blend <= 1).all() and blend[:, COLUMNS.index("JawOpen") - 2].std() > 0.01
    head = np.array([[float(v) for v in r[54:57]] for r in rows[1:]])
    assert np.abs(head).max() < 1.0  # radians: a talking head, not degrees


def test_gltf_loads_back_and_matches_the_tracked_face(recording: Path, tmp_path: Path, tracker) -> None:
    """pygltflib reads 53 morph targets and an animation as long as the recording's frames with a face; a
    keyframe evaluated from the file puts the mesh where the tracker put the face, in the source camera."""
    import pygltflib

    from facetrack.io.gltf import export_gltf, person_params, read_frame
    from facetrack.io.recording import read_recording
    from facetrack.render.reconstruction import Needs
    from facetrack.track.head import recorded_poses

    rec = read_recording(recording)
    out = tmp_path / "take.glb"
    keys, left_out = export_gltf(rec, tracker.model, out)
    assert (keys, left_out) == (30, 2)
    doc = pygltflib.GLTF2().load(str(out))
    prim = doc.meshes[0].primitives[0]
    assert len(prim.targets) == 53 and doc.meshes[0].extras["targetNames"] == list(tracker.model.exp_names)
    assert len(doc.animations) == 1 and {c.target.path for c in doc.animations[0].channels} == \
        {"weights", "rotation", "translation"}
    x, neutral = person_params(tracker.model, rec)
    R, t = (a[rec.present] for a in recorded_poses(rec, np.eye(3)))  # the source camera's, as streams send
    sl = tracker.model.layout.slices()
    final = Needs(frozenset({"final"}))

    def in_source(params: np.ndarray, k: int) -> np.ndarray:  # a crop-frame mesh moved to frame k's source pose
        r = tracker.reconstruct(params, final)
        return (r.levels["final"].v_cam - params[sl["trans"]]) @ r.rotation_matrix @ R[k].T + t[k]

    for k in (5, 25):
        f = read_frame(out, k)
        assert f.duration == pytest.approx(rec.timestamp[29] - rec.timestamp[0], abs=1e-4)
        assert f.time == pytest.approx(rec.timestamp[k] - rec.timestamp[0], abs=1e-4)
        v = (f.vertices @ f.rotation.T + f.translation) * 100 + t[0]
        # exactly the person's mesh with frame k's expressions and pose ...
        person = neutral.copy()
        for block in ("alpha_exp", "rot", "trans"):
            person[sl[block]] = x[k, sl[block]]
        assert np.abs(v - in_source(person, k)).max() < 0.01  # cm
    # ... and close to the tracked face (the export holds the median identity; the tracker's settles over the
    # first frames, so compare where it has: the last keyframe checked)
    d = np.linalg.norm(v - in_source(x[k], k), axis=1)
    assert np.median(d) < 0.3


def test_obj_sequence_and_no_face_frames(recording: Path, tmp_path: Path, model_file: Path, weights: Path) -> None:
    from facetrack.cli import main

    folder = tmp_path / "meshes"
    assert main(["export", str(recording), "--obj-seq", str(folder), "--model", str(model_file)]) == 0
    files = sorted(folder.glob("frame_*.obj"))
    assert len(files) == 30
    text = files[0].read_text()
    assert text.count("\nv ") + text.startswith("v ") > 9000 and "\nf " in text


def test_export_says_what_to_write(recording: Path, capsys) -> None:
    from facetrack.cli import main

    assert main(["export", str(recording)]) == 2
    assert "--livelink-csv" in capsys.readouterr().err


def test_prebuilt_bundles_parse_back_exactly(face) -> None:
    """The bundles (python-osc encodes each message's fixed part once, the numbers are filled in per frame)
    read back with python-osc's own parser as the values sent."""
    from pythonosc.osc_bundle import OscBundle

    from facetrack.io.streaming import Streamer, StreamFrame

    names = [str(n) for n in face.exp_names]
    rng = np.random.default_rng(0)
    exp = rng.uniform(0, 1, 53).astype(np.float32)
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # turned to the person's left
    frame = StreamFrame(2.5, True, exp, R, np.array([1.0, 17.2, -3.0]), np.array([1.0, 2.0, -110.0]))
    for protocol in ("vmc", "osc"):
        st = Streamer(StreamTarget(protocol, "127.0.0.1", 9), names)
        st._t0 = 2.0
        msgs = [m for m in OscBundle(st._bundle(frame)[0].dgram)]
        st.close()
        got = {}
        for m in msgs:
            got.setdefault(m.address, []).append(m.params)
        if protocol == "vmc":
            values = dict(p for p in got["/VMC/Ext/Blend/Val"])
            assert values["JawOpen"] == pytest.approx(to_arkit(names, exp)[ARKIT_NAMES.index("jawOpen")])
            assert got["/VMC/Ext/OK"] == [[1]] and got["/VMC/Ext/T"][0][0] == pytest.approx(0.5)
            head = got["/VMC/Ext/Bone/Pos"][0]
            assert head[0] == "Head" and head[5] == pytest.approx(-np.sin(0.15), abs=1e-6)  # Unity: y negated
            assert head[7] == pytest.approx(np.cos(0.15), abs=1e-6)
        else:
            assert got["/facetrack/blend/jawOpen"][0][0] == pytest.approx(exp[names.index("jawOpen")])
            assert got["/facetrack/head/rotation"][0] == pytest.approx([1.0, 17.2, -3.0], abs=1e-5)
            assert got["/facetrack/face"] == [[1]] and len(msgs) == 5 + 53
