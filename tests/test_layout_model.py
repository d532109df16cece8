"""Parameter layout and the multi-level model's levels."""

from __future__ import annotations

import pytest
import torch

from facetrack.model.facemodel import FaceModel
from facetrack.model.layout import BLOCKS, ParamLayout
from facetrack.model.multilevel import MultiLevelModel


def test_layout_split_join_round_trip() -> None:
    lay = ParamLayout()
    assert lay.size == 100 + 53 + 80 + 500 + 500 + 3 + 3 + 27
    x = torch.randn(4, lay.size)
    parts = lay.split(x)
    assert list(parts) == list(BLOCKS) and parts["gamma"].shape == (4, 3, 9)
    assert torch.equal(lay.join(parts), x)
    assert [r[0] for r in lay.table()] == list(BLOCKS) and lay.table()[-1][1] + 27 == lay.size
    with pytest.raises(ValueError, match="layout expects"):
        lay.split(torch.zeros(1, 10))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_levels(face: FaceModel, kind: str) -> None:
    model = MultiLevelModel(face, n_cg=8, n_cr=8, corrective=kind)
    lay = model.layout
    x = torch.zeros(2, lay.size)
    lv = model(model.params(x))
    # With delta = 0 (what an untrained encoder outputs) the final level is the base level.
    assert torch.equal(lv.v_final, lv.v_base) and torch.equal(lv.v_base[0], model.mean)
    x[:, lay.slices()["delta_g"]] = torch.randn(2, 8)
    p = model.params(x)
    with torch.no_grad():
        for prm in model.geo_corrective.parameters():
            prm.normal_(0, 0.01)
    lv = model(p)
    assert (lv.v_final - lv.v_base).abs().max() > 0 and torch.equal(lv.r_final, lv.r_base)
    # jawOpen moves the chin down by centimetres; identity 0 changes the mean shape.
    x2 = torch.zeros(1, lay.size)
    x2[0, lay.slices()["alpha_exp"].start + model.exp_names.index("jawOpen")] = 1.0
    v_open, _ = model.base(model.params(x2))
    chin = face.landmarks[8]
    assert -3.0 < (v_open[0, chin, 1] - model.mean[chin, 1]).item() < -1.0
    lv.v_final.sum().backward()  # correctives are trainable
    assert all(q.grad is not None for q in model.geo_corrective.parameters())


def test_labels_from_before_the_correctives_grew_keep_every_other_block() -> None:
    """Distillation reads identity, expressions, pose and light of labels cached with weights that had fewer
    correctives; for labels of its own layout it reads what `split` reads."""
    old, grown = ParamLayout(n_cg=100, n_cr=100), ParamLayout(n_cg=100, n_cr=200)
    x = torch.randn(3, old.size)
    want, got = old.split(x), grown.without_correctives(x)
    assert set(got) == set(want) - {"delta_g", "delta_r"}
    for k, v in got.items():
        assert torch.equal(v, want[k]), k
    same = grown.without_correctives(y := torch.randn(2, grown.size))
    assert all(torch.equal(v, grown.split(y)[k]) for k, v in same.items())
    with pytest.raises(ValueError):
        grown.without_correctives(torch.zeros(1, 100))
