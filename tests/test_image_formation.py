"""Camera, SH shading, point sampling, visibility and both rasterizers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel, vertex_normals
from facetrack.render.camera import Camera, euler_to_matrix, matrix_to_euler
from facetrack.render.formation import base_params, view
from facetrack.render.points import sample
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.sh import irradiance, sh_basis


@pytest.fixture(scope="module")
def model(face: FaceModel) -> MultiLevelModel:
    return MultiLevelModel(face, n_cg=4, n_cr=4)


def _mean_view(model: MultiLevelModel, rot=(0.0, 0.0, 0.0)):
    p = base_params(model)
    p["rot"][0] = torch.tensor(rot)
    v, r = model.base(p)
    return view(v, r, p, model.triangles, Camera())


def test_mean_face_landmarks_frontal(model: MultiLevelModel) -> None:
    lm = _mean_view(model).uv[0, model.landmarks].numpy()
    assert lm.min() > 20 and lm.max() < 220  # inside the crop with a margin
    eyes_y = lm[36:48, 1].mean()
    nose_y, mouth_y, chin_y = lm[30, 1], lm[48:60, 1].mean(), lm[8, 1]
    assert eyes_y < nose_y < mouth_y < chin_y  # top to bottom, v grows downwards
    assert abs(lm[8, 0] - 120) < 1 and abs(lm[30, 0] - 120) < 1  # on the vertical centre line
    assert lm[36, 0] < lm[45, 0] and lm[0, 0] < 70 and lm[16, 0] > 170  # subject's right on the image left
    assert 120 < lm[16, 0] - lm[0, 0] < 160  # jaw spans about 57% of the crop


def test_euler_round_trip_and_rotation() -> None:
    angles = torch.tensor([[0.3, -0.5, 0.2], [-0.1, 1.2, -0.7]], dtype=torch.float64)
    R = euler_to_matrix(angles)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(2, 3, 3), atol=1e-12)
    assert torch.allclose(matrix_to_euler(R), angles, atol=1e-10)


def test_clip_space_matches_projection() -> None:
    cam = Camera()
    pts = torch.tensor([[[3.0, -2.0, -100.0], [-5.0, 4.0, -130.0]]])
    clip = cam.clip(pts)
    ndc = clip[..., :2] / clip[..., 3:]
    uv = cam.project(pts)
    assert torch.allclose((ndc + 1) / 2 * 240, uv, atol=1e-4)  # framebuffer row 0 is the top image row
    assert torch.all(clip[..., 2].abs() < clip[..., 3])  # inside the depth range


def test_sh_ambient_is_unit_light() -> None:
    n = torch.nn.functional.normalize(torch.randn(1, 50, 3), dim=-1)
    g = torch.zeros(1, 3, 9)
    g[:, :, 0] = 1.0
    assert torch.allclose(irradiance(n, g), torch.ones(1, 50, 3))
    assert sh_basis(n).shape == (1, 50, 9)


def test_gradcheck_geometry_shading_sampling(model: MultiLevelModel) -> None:
    """Double-precision gradients through the 3DMM, pose, projection, SH shading and point sampling."""
    torch.manual_seed(0)
    m = model.double()
    keep = torch.arange(0, m.n_vertices, 97)  # a few vertices keep the numerical Jacobian cheap
    image = torch.rand(2, 3, 24, 24, dtype=torch.float64)
    image = torch.nn.functional.interpolate(image, size=(240, 240), mode="bilinear", align_corners=False)
    p0 = {k: v.double().repeat(2, *[1] * (v.dim() - 1)) for k, v in base_params(m).items()}

    def residual(a_id, a_exp, rot, trans, gamma, img):
        p = dict(p0)
        p["alpha_id"] = torch.cat([a_id, p0["alpha_id"][:, 3:]], 1)
        p["alpha_exp"] = torch.cat([a_exp, p0["alpha_exp"][:, 3:]], 1)
        p.update(rot=rot, trans=trans, gamma=gamma)
        v, r = m.base(p)
        vw = view(v, r, p, m.triangles, Camera())
        return (sample(img, vw.uv) - vw.color)[:, keep]

    inputs = (0.3 * torch.randn(2, 3), 0.3 * torch.rand(2, 3), 0.1 * torch.randn(2, 3),
              p0["trans"] + torch.randn(2, 3), p0["gamma"] + 0.1 * torch.randn(2, 3, 9), image)
    inputs = tuple(t.double().requires_grad_() for t in inputs)
    try:
        assert torch.autograd.gradcheck(residual, inputs[:5] + (inputs[5].detach(),), eps=1e-6, atol=1e-5)
        small = image[:, :, ::10, ::10].detach().clone().requires_grad_()  # sampling w.r.t. the image itself
        assert torch.autograd.gradcheck(lambda im: sample(im, 24 * torch.rand(2, 30, 2, dtype=torch.float64,
                                        generator=torch.Generator().manual_seed(1))), (small,))
    finally:
        model.float()


def test_turning_90_degrees_hides_far_cheek(model: MultiLevelModel, face: FaceModel) -> None:
    # Cheek surface facing outwards to the subject's left (x > 0) moves away from the camera at yaw +90;
    # inner walls of eye holes face the other way and would need a depth test, not backface culling.
    x = torch.from_numpy(face.mean[:, 0])
    nx = vertex_normals(model.mean[None], model.triangles)[0, :, 0]
    front = torch.from_numpy(face.mean[:, 2]) > 4
    far, near = front & (x > 3) & (nx > 0.2), front & (x < -3) & (nx < -0.2)
    frontal = _mean_view(model).visible[0]
    turned = _mean_view(model, (0.0, math.pi / 2, 0.0)).visible[0]
    assert frontal[far].float().mean() > 0.9 and frontal[near].float().mean() > 0.9
    assert turned[far].float().mean() < 0.01
    assert turned[near].float().mean() > 0.5


def test_gl_rasterizer_covers_projected_face(model: MultiLevelModel, face: FaceModel) -> None:
    vw = _mean_view(model)
    raster = GLRasterizer(240, 240, supersample=1)
    rgb, cov = raster.render(Camera().clip(vw.v_cam[0]).numpy(), face.triangles, vw.color[0].numpy())
    raster.release()
    assert 0.35 < cov.mean() < 0.9
    uv = vw.uv[0][vw.visible[0]].long().clamp(0, 239).numpy()
    assert cov[uv[:, 1], uv[:, 0]].mean() > 0.97  # visible vertices land on covered pixels
    # Interpolated colours agree with the vertex colours at the vertices (away from edges).
    inner = vw.visible[0] & (model.photo_mask > 0)
    px = vw.uv[0][inner].long().numpy()
    err = np.abs(rgb[px[:, 1], px[:, 0]] - vw.color[0][inner].numpy()).mean()
    assert err < 0.02


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nvdiffrast_matches_gl(model: MultiLevelModel, face: FaceModel) -> None:
    from facetrack.render.raster_nv import NvdiffrastRasterizer

    vw = _mean_view(model)
    clip = Camera().clip(vw.v_cam)
    nv = NvdiffrastRasterizer(240, 240, antialias=False)
    img, mask = nv(clip.cuda(), model.triangles.cuda(), vw.color.cuda())
    gl = GLRasterizer(240, 240, supersample=1)
    rgb, cov = gl.render(clip[0].numpy(), face.triangles, vw.color[0].numpy())
    gl.release()
    m = mask[0].cpu().numpy() > 0.5
    iou = (m & (cov > 0.5)).sum() / (m | (cov > 0.5)).sum()
    assert iou > 0.98
    both = m & (cov > 0.5)
    assert np.abs(img[0].cpu().numpy()[both] - rgb[both]).mean() < 0.01
    # Gradients reach the vertices through the rasterized image.
    v = vw.v_cam.cuda().requires_grad_()
    out, msk = nv(Camera().clip(v), model.triangles.cuda(), vw.color.cuda())
    out.sum().backward()
    assert torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_rasterized_photometric_counts_only_the_photometric_mask(model: MultiLevelModel) -> None:
    """The training term that runs with nvdiffrast on CUDA, here through the CPU rasterizer (same interface):
    an image equal to the render except where the photometric mask is zero (hole rims, painted black)
    costs nothing; the same image with the whole face painted over costs about its colour distance."""
    from train.losses import rasterized_photometric

    gl = GLRasterizer(240, 240, supersample=1)

    def raster(clip, tris, attrs):
        out = [gl.render(c.numpy(), tris.numpy(), a.numpy()) for c, a in zip(clip, attrs, strict=True)]
        return torch.from_numpy(np.stack([o[0] for o in out])), torch.from_numpy(np.stack([o[1] for o in out]))

    vw = _mean_view(model)
    cam = Camera()
    weight = model.photo_mask
    both = torch.cat([vw.color, weight[None, :, None]], -1)
    out, cov = raster(cam.clip(vw.v_cam), model.triangles, both)
    image = out[..., :3].clone()
    image[out[..., 3] <= 1e-6] = 0.0  # rims and background black
    img = image.permute(0, 3, 1, 2)
    assert ((cov > 0.5) & (out[..., 3] <= 1e-6)).sum() > 500  # there are rim pixels to ignore
    err = rasterized_photometric(raster, cam, vw, model.triangles, img, weight)
    assert float(err) < 1e-4
    grey = torch.full_like(img, 0.5)
    far = rasterized_photometric(raster, cam, vw, model.triangles, grey, weight)
    inner = (weight > 0) & vw.visible[0]
    expect = (vw.color[0][inner] - 0.5).norm(dim=-1).mean()
    assert abs(float(far) - float(expect)) < 0.25 * float(expect)
    gl.release()


def test_vertex_normals_match_the_numpy_twin_per_batch_item(model: MultiLevelModel) -> None:
    """Two different faces in one batch: each item's normals are its own mesh's (no row of the flat
    index_add lands in the other item), equal to the import-time numpy version, and they pass gradients."""
    from facetrack.model.ict import vertex_normals_np

    gen = torch.Generator().manual_seed(0)
    ids = 2.0 * torch.randn(2, model.id_basis.shape[0], generator=gen) * model.id_sigma
    v = model.neutral(ids).double().requires_grad_(True)
    n = vertex_normals(v, model.triangles)
    tris = model.triangles.numpy()
    for b in range(2):
        assert np.allclose(n[b].detach().numpy(), vertex_normals_np(v[b].detach().numpy(), tris), atol=1e-9)
    assert not np.allclose(n[0].detach().numpy(), n[1].detach().numpy(), atol=1e-3)
    n[:, :, 2].sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0


def test_reconstructor_keeps_the_person_only_while_it_stays(model: MultiLevelModel) -> None:
    """The run-time reconstruction keeps the neutral face and the reflectance (base and corrective) between
    frames: a new identity or reflectance is taken at once, and every level equals the model's own forward
    pass."""
    from facetrack.render.reconstruction import LEVELS, Needs, Reconstructor

    model = model.eval()
    recon = Reconstructor(model, Camera())
    gen = torch.Generator().manual_seed(1)
    p = base_params(model)
    frames = []
    for _person in range(2):
        p["alpha_id"] = torch.randn(1, model.id_basis.shape[0], generator=gen) * model.id_sigma
        p["beta"] = torch.randn(1, model.refl_basis.shape[0], generator=gen) * model.refl_sigma
        p["delta_r"] = torch.randn(1, p["delta_r"].shape[1], generator=gen)
        for _ in range(2):  # same person, new expression and correctives
            p["alpha_exp"] = torch.rand(1, model.exp_basis.shape[0], generator=gen) * 0.3
            p["delta_g"] = torch.randn(1, p["delta_g"].shape[1], generator=gen)
            frames.append({k: t.clone() for k, t in p.items()})
    for q in frames:
        r = recon(model.layout.join(q)[0].numpy(), Needs(frozenset(LEVELS)))
        with torch.no_grad():
            lv = model(q)
        R = euler_to_matrix(q["rot"])[0]
        for name, v, alb in (("base", lv.v_base, lv.r_base), ("final", lv.v_final, lv.r_final)):
            v_cam = (v[0] @ R.T + q["trans"][0]).numpy()
            assert np.allclose(r.levels[name].v_cam, v_cam, atol=1e-4), name
            assert np.allclose(r.levels[name].albedo, alb[0].clamp(0, 1).numpy(), atol=1e-5), name
