"""Analysis-by-synthesis fitting of a morphable model to images.

Stages (coarse to fine):

1. **Landmarks** (on the cheap :func:`landmark_submodel`, plus the sliding contour's candidate
   vertices, :mod:`face3d.reconstruct.contour`): head rotation/translation, expression,
   jaw, focal length and (near the estimator's prediction) identity, against the detected 68
   landmarks.
2. **Photometric shape** (``shape_steps``/``shape_sizes``, e.g. 100 steps on a 128 px crop):
   identity, pose, expression, jaw, focal, SH lighting and *one skin colour per image*, rendered
   with the differentiable :class:`face3d.render.Renderer` against the photo on the face's skin
   (eyes, lips, mouth left out), landmark term and priors still on. With a uniform albedo, shading
   can only be explained by the surface's normals, so this is where the image adds shape that 68
   noisy landmarks do not show (depth profile, cheek and forehead curvature). Image evidence
   carries no absolute scale; the metric size comes from the estimator the fit starts from.
3. **Photometric appearance** at increasing resolutions (``photo_sizes``): per-vertex albedo,
   lighting, pose and expression with the shape fixed (a free per-vertex albedo would explain
   shading as easily as shape does).

Several images can be fitted at once (the renderer is batched): with ``share_identity`` they share
one identity and one focal length (video frames of one person, :mod:`face3d.reconstruct.track`),
and ``temporal`` penalises pose/expression changes between consecutive images.

The camera convention is :mod:`face3d.reconstruct.camera`'s (camera at the origin looking down
-z); the head pose is the model's global ``rotation`` (axis-angle, rad) and ``translation`` (mm).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from face3d.geometry.rotations import axis_angle_to_matrix
from face3d.geometry.topology import faces_within
from face3d.models.base import MorphableModel
from face3d.reconstruct.camera import make_camera, project
from face3d.render.lighting import SH_C0
from face3d.reconstruct.synthetic import landmark_submodel, restrict_model

# iBUG-68 landmark weights: the jaw contour (0-16) is a silhouette, not fixed points on the skin,
# so the model's fixed-vertex contour disagrees with it under yaw; trust it less.
_LM_WEIGHTS = torch.ones(68)
_LM_WEIGHTS[0:17] = 0.3
_CONTOUR_GAIN = 2.0


@dataclass(frozen=True)
class FitConfig:
    """Fitting settings.

    - ``rigid_iters``: L-BFGS iterations of the rigid pose fit that starts stage 1;
      ``landmark_steps``: Adam steps of stage 1 on all parameters;
    - ``shape_steps``/``shape_sizes``: the photometric *shape* stage (runs first when images are
      given): Adam steps per level and crop side (px). Identity moves here, with a uniform skin
      colour (one RGB per image) and SH lighting, so shading can only be explained by geometry;
      eyes, lips and mouth are left out. ``shape_lr``: identity step size; ``shape_warmup``:
      steps that fit lighting, colour and pose before identity moves; ``w_identity_shape``
      replaces ``w_identity`` in this stage (a weak pull towards the estimate: the image now
      shows what the landmarks could not); ``shape_robust``: scale (colour units) of the Cauchy
      loss on per-pixel colour errors, so that what one skin colour cannot explain (brows,
      make-up, stubble) pulls less than shading does (0 = plain L1). Empty ``shape_steps`` = no
      shape stage.
    - ``photo_steps``/``photo_sizes``: Adam steps per level of the *appearance* stage (per-vertex
      albedo, lighting, pose, expression; identity fixed) and the side (px) of the square face
      crop rendered at that level; empty = no appearance stage.
    - ``w_landmark``: weight of the mean squared landmark error in units of the outer-eye distance.
    - ``contour``: ``"sliding"``: the jaw contour landmarks (0-16, chin excepted) follow the
      model's silhouette for the current pose (:class:`~face3d.reconstruct.contour.SlidingContour`),
      as a detector's do when the head turns; ``"fixed"``: tied to fixed vertices.
    - ``landmark_robust``: scale (fraction of the outer-eye distance) of the Cauchy loss on each
      landmark's error, so that one landmark the detector misplaced does not bend the face
      (errors well below it count as squared errors); 0 = plain squared errors.
    - ``w_photo``: weight of the mean absolute colour error (colours in [0, 1]).
    - ``w_identity``: prior pulling identity (in std units) towards the estimator's prediction
      in the landmark stage (strong by default: the estimator already used the landmarks, and on
      the synthetic benchmark a weak prior, 0.002, let them pull the shape 0.1 mm further from
      the truth);
      ``w_expression``, ``w_jaw``: zero-mean priors (std units / radians);
      ``w_focal``: prior on log focal length around ``fov_deg``.
    - ``w_albedo``: pulls the per-vertex albedo towards its initial (mean skin) colour.
    - ``temporal``: weight of squared differences of pose and expression between consecutive
      images (tracking); 0 for unrelated photos.
    - ``share_identity``: one identity and focal for the whole batch.
    - ``fit_identity``: let identity move at all (False keeps the estimator's shape exactly).
    """

    rigid_iters: int = 60
    landmark_steps: int = 150
    photo_steps: tuple[int, ...] = (30,)
    photo_sizes: tuple[int, ...] = (128,)
    shape_steps: tuple[int, ...] = (100,)
    shape_sizes: tuple[int, ...] = (128,)
    shape_lr: float = 0.03
    shape_warmup: int = 30
    w_identity_shape: float = 1e-3
    shape_robust: float = 0.05
    lr: float = 0.03
    w_landmark: float = 100.0
    contour: Literal["sliding", "fixed"] = "sliding"
    landmark_robust: float = 0.1
    w_photo: float = 10.0
    w_identity: float = 0.2
    w_expression: float = 1e-3
    w_jaw: float = 1e-2
    w_focal: float = 1e-3
    w_albedo: float = 0.05
    temporal: float = 0.0
    share_identity: bool = False
    fit_identity: bool = True
    fov_deg: float = 40.0
    fit_focal: bool = True


@dataclass
class FitResult:
    """Fitted parameters for B images (tensors detached, float32, CPU).

    ``identity`` (B, n_id), ``expression`` (B, n_exp), ``jaw`` (B, 3) rad, ``rotation`` (B, 3)
    rad, ``translation`` (B, 3) mm, ``focal`` (B,) px, ``sh`` (B, 9, 3), ``albedo`` (B, V, 3)
    in [0, 1] or None, ``vertices`` (B, V, 3) mm posed in camera-world space, ``landmarks2d``
    (B, 68, 2) px of the fitted model (with ``contour="sliding"`` the contour landmarks are the
    fitted silhouette points, i.e. where a detector would put them), ``width``/``height`` px,
    ``history``: loss per stage.
    """

    identity: Tensor
    expression: Tensor
    jaw: Tensor
    rotation: Tensor
    translation: Tensor
    focal: Tensor
    sh: Tensor
    albedo: Tensor | None
    vertices: Tensor
    landmarks2d: Tensor
    width: int
    height: int
    history: dict = field(default_factory=dict)

    def nme(self, detected: Tensor) -> Tensor:
        """(B, 68, 2) detected px -> (B,) mean landmark error / outer-eye distance (36-45)."""
        iod = (detected[:, 36] - detected[:, 45]).norm(dim=-1)
        return (self.landmarks2d - detected).norm(dim=-1).mean(-1) / iod


def initial_pose(model_landmarks: Tensor, detected: Tensor, focal: Tensor) -> tuple[Tensor, Tensor]:
    """Frontal rotation and a translation that puts the model's landmarks (B, 68, 3) mm, at the
    detected landmarks' (B, 68, 2) px centre and outer-eye size for focal (B,) px."""
    w_mm = (model_landmarks[:, 36] - model_landmarks[:, 45]).norm(dim=-1)
    w_px = (detected[:, 36] - detected[:, 45]).norm(dim=-1).clamp_min(1.0)
    z = focal * w_mm / w_px
    return torch.zeros_like(model_landmarks[:, 0]), torch.stack([torch.zeros_like(z), torch.zeros_like(z), -z], -1)


def fit(model: MorphableModel, landmarks: Tensor, images: Tensor | None = None,
        identity_init: Tensor | None = None, cfg: FitConfig = FitConfig(),
        visible: Tensor | None = None, width: int | None = None, height: int | None = None,
        renderer=None, focal_init: float | None = None, previous: dict | None = None) -> FitResult:
    """Fit ``model`` to B images.

    Args:
        model: the morphable model (mm).
        landmarks: (B, 68, 2) float px detected iBUG-68 landmarks (OpenCV pixel coordinates).
        images: (B, H, W, 3) float in [0, 1] (or uint8) photos, or None for landmarks only.
        identity_init: (B, n_id) or (n_id,) starting identity, also the prior's centre (the
            learned estimator's output); default the mean head (zeros).
        cfg: :class:`FitConfig`.
        visible: (B, 68) bool, landmarks to use (default all).
        width, height: image size in px when ``images`` is None.
        renderer: a :class:`face3d.render.Renderer` (default: a new one, ``backend="auto"``).
        focal_init: starting focal length (px) and centre of its prior; default from ``cfg.fov_deg``.
        previous: for tracking in batches, the last fitted frame before this batch:
            {"rotation" (3,), "translation" (3,), "expression" (n_exp,), "jaw" (3,)}; the
            temporal term then also ties the first image to it.

    Returns:
        :class:`FitResult`.
    """
    landmarks = torch.as_tensor(landmarks, dtype=torch.float32)
    if landmarks.dim() != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"landmarks: expected shape (B, 68, 2) px, got {tuple(landmarks.shape)}")
    B = landmarks.shape[0]
    if images is not None:
        images = torch.as_tensor(images)
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        if images.dim() != 4 or images.shape[0] != B or images.shape[-1] != 3:
            raise ValueError(f"images: expected shape ({B}, H, W, 3), got {tuple(images.shape)}")
        height, width = int(images.shape[1]), int(images.shape[2])
    if width is None or height is None:
        raise ValueError("fit: pass images or width and height (px)")
    vis = torch.ones(B, 68, dtype=torch.bool) if visible is None else torch.as_tensor(visible, dtype=torch.bool)
    lm_w = _LM_WEIGHTS[None] * vis.float()
    if cfg.contour == "sliding":
        # A silhouette-following contour can be trusted more than fixed vertices: on the synthetic
        # landmark benchmark (30-60 deg yaw, the procedural head of the time) weight 0.6 instead of 0.3 lowered the jaw error from
        # 8.6 to 7.6 % of the outer-eye distance, frontal unchanged (1.0: 6.8 %, but dlib's jaw
        # points on photos are noisier than the inner ones).
        lm_w = lm_w.clone()
        lm_w[:, 0:17] *= _CONTOUR_GAIN

    nI = 1 if cfg.share_identity else B
    if identity_init is None:
        id0 = torch.zeros(nI, model.n_identity)
    else:
        id0 = torch.as_tensor(identity_init, dtype=torch.float32).reshape(-1, model.n_identity)
        id0 = id0.mean(0, keepdim=True) if cfg.share_identity else id0.expand(B, -1).clone()
    f0 = focal_init if focal_init is not None else 0.5 * max(width, height) / math.tan(math.radians(cfg.fov_deg) / 2)
    log_f0 = torch.full((nI, 1), math.log(f0))

    contour = None
    if cfg.contour == "sliding":
        from face3d.reconstruct.contour import SlidingContour

        contour = SlidingContour(model)
        sub = restrict_model(model, contour.vertex_ids)[0]
    elif cfg.contour == "fixed":
        sub = landmark_submodel(model)
    else:
        raise ValueError(f"FitConfig.contour: expected 'sliding' or 'fixed', got {cfg.contour!r}")
    root_t = model.joint_regressor[0] @ model.template  # (3,)
    root_b = torch.einsum("v,vck->ck", model.joint_regressor[0], model.identity_basis)  # (3, K)
    iod = (landmarks[:, 36] - landmarks[:, 45]).norm(dim=-1).clamp_min(1.0)  # (B,)
    with torch.no_grad():
        lm_mean = sub.landmark_positions(sub(identity=id0).vertices)
        rot0, trans0 = initial_pose(lm_mean.expand(B, -1, -1), landmarks, log_f0.exp().reshape(-1).expand(B))
        # Centre the head on the detected landmarks.
        c_px = landmarks.mean(1) - torch.tensor([(width - 1) / 2, (height - 1) / 2])
        z = -trans0[:, 2]
        c_w = lm_mean.mean(1).expand(B, -1)
        trans0[:, 0] = c_px[:, 0] * z / log_f0.exp().reshape(-1).expand(B) - c_w[:, 0]
        trans0[:, 1] = -c_px[:, 1] * z / log_f0.exp().reshape(-1).expand(B) - c_w[:, 1]
        trans0[:, 2] = trans0[:, 2] - c_w[:, 2]
        tscale = (-trans0[:, 2:3]).clamp_min(1.0) / 100
        pivot = lm_mean.mean(1).expand(B, -1)  # face centre (rest pose, mm)

    P = {
        "rotation": rot0.clone().requires_grad_(True),
        # translation = t_n * tscale: ~1 unit per 1 % of the head's distance, so rotation and
        # translation steps have comparable scales for the optimisers.
        "t_n": (trans0 / tscale).clone().requires_grad_(True),
        "expression": torch.zeros(B, model.n_expression, requires_grad=True),
        "jaw": torch.zeros(B, 3, requires_grad=True),
        "identity": id0.clone().requires_grad_(cfg.fit_identity),
        "log_f": log_f0.clone().requires_grad_(cfg.fit_focal),
    }
    arkit = float(model.expression_std.max()) <= 0.75
    prev_vec = None
    if previous is not None:
        prev_vec = torch.cat([torch.as_tensor(previous["rotation"]).float() * 10,
                              torch.as_tensor(previous["translation"]).float() / 10,
                              torch.as_tensor(previous["expression"]).float(),
                              torch.as_tensor(previous["jaw"]).float() * 10])

    def expand(x: Tensor) -> Tensor:
        return x.expand(B, -1) if x.shape[0] == 1 and B > 1 else x

    def priors(w_identity: float = cfg.w_identity) -> Tensor:
        e = P["expression"] / model.expression_std
        r = cfg.w_expression * (e ** 2).sum(-1).mean()
        r = r + cfg.w_jaw * (P["jaw"] ** 2).sum(-1).mean() * 100
        r = r + w_identity * ((P["identity"] - id0) ** 2).sum(-1).mean()
        r = r + cfg.w_focal * ((P["log_f"] - log_f0) ** 2).mean() * 100
        if cfg.temporal > 0 and (B > 1 or prev_vec is not None):
            # Units: 0.1 rad ~ 10 mm ~ 1 expression unit ~ 0.1 rad of jaw.
            d = torch.cat([P["rotation"] * 10, model_translation() / 10, P["expression"], P["jaw"] * 10], -1)
            if prev_vec is not None:
                d = torch.cat([prev_vec[None], d])
            r = r + cfg.temporal * ((d[1:] - d[:-1]) ** 2).sum(-1).mean()
        return r

    # The robust scale is off during the rigid start: from a frontal guess a turned head's
    # landmarks are all "outliers", and a Cauchy loss would then stop pulling the pose round.
    robust = [0.0]

    def landmark_loss(mdl: MorphableModel, out_vertices: Tensor, focal: Tensor) -> tuple[Tensor, Tensor]:
        lm2 = project(mdl.landmark_positions(out_vertices), focal, width, height)
        if contour is not None:
            lm2 = contour.slide(mdl, out_vertices, lm2, lambda x: project(x, focal, width, height),
                                P["rotation"], iod)
        err = ((lm2 - landmarks) ** 2).sum(-1) / iod[:, None] ** 2
        if robust[0] > 0:  # Cauchy: ~err for small errors, logarithmic for outliers
            c2 = robust[0] ** 2
            err = c2 * torch.log1p(err / c2)
        return (err * lm_w).sum(-1).mean() / lm_w.sum(-1).mean().clamp_min(1), lm2

    def forward(mdl: MorphableModel):
        jaw = P["jaw"] * torch.tensor([1.0, 0.2, 0.2])  # mostly opening; a little side motion
        e = P["expression"].clamp(0, 1) if arkit else P["expression"]
        return mdl(identity=expand(P["identity"]), expression=e, jaw=jaw,
                   rotation=P["rotation"], translation=model_translation())

    def model_translation(mdl: MorphableModel | None = None) -> Tensor:
        # The optimised pose rotates about the face centre ``pivot`` (rotating about the root
        # joint at the base of the neck couples pitch with a large translation and makes the
        # problem badly conditioned); convert to the model's root-joint convention:
        # R (v - c) + c + t = R (v - j0) + j0 + trans  =>  trans = t + (I - R)(c - j0).
        j0 = root_t + expand(P["identity"]) @ root_b.T  # rest root joint (B, 3): linear in identity
        R = axis_angle_to_matrix(P["rotation"])
        d = (pivot - j0)[..., None]
        return P["t_n"] * tscale + (d - R @ d)[..., 0]

    def clamp_() -> None:
        with torch.no_grad():
            if arkit:  # the forward pass clamps to [0, 1]; keep the raw value near that range
                P["expression"].clamp_(-0.1, 1.1)
            P["jaw"][:, 0].clamp_(-0.05, 0.6)  # the jaw opens (+x) up to ~35 degrees

    def focal_b() -> Tensor:
        return expand(P["log_f"]).exp().reshape(-1)

    history: dict = {}
    # Stage 1a: rigid pose by L-BFGS (6 smooth parameters per image; converges in a few dozen
    # iterations where Adam needs hundreds). Rigid first, so expressions do not explain a wrong pose.
    losses: list[float] = []

    def lm_objective() -> Tensor:
        out = forward(sub)
        l_lm, _ = landmark_loss(sub, out.vertices, focal_b())
        losses.append(float(l_lm.detach()))
        return cfg.w_landmark * l_lm + priors()

    n1 = cfg.landmark_steps
    if n1 > 0:
        opt = torch.optim.LBFGS([P["rotation"], P["t_n"]], lr=1.0, max_iter=cfg.rigid_iters, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-14)

        def closure():
            opt.zero_grad()
            loss = lm_objective()
            loss.backward()
            return loss

        opt.step(closure)
        robust[0] = cfg.landmark_robust
        # Stage 1b: everything, by Adam (expressions are box-constrained; Adam + clamping handles that).
        groups = [
            {"params": [P["rotation"], P["t_n"], P["expression"], P["jaw"]], "lr": cfg.lr},
            {"params": [P["identity"]], "lr": cfg.lr},
            {"params": [P["log_f"]], "lr": 0.01},
        ]
        opt = torch.optim.Adam(groups)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / max(n1, 1))))
        for _ in range(n1):
            loss = lm_objective()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            clamp_()
    history["landmark"] = losses
    robust[0] = cfg.landmark_robust

    sh = torch.zeros(B, 9, 3)
    sh[:, 0] = 1.0 / SH_C0  # uniform white light of irradiance 1
    albedo = None
    shape_on = bool(cfg.shape_steps and cfg.shape_sizes and cfg.fit_identity)
    if images is not None and (shape_on or (cfg.photo_steps and cfg.photo_sizes)):
        if renderer is None:
            from face3d.render import Renderer

            renderer = Renderer()
        sh, albedo = _photometric(model, P, forward, landmark_loss, priors, clamp_, focal_b, images,
                                  cfg, renderer, sh, history, width, height, shape_on)

    with torch.no_grad():
        out = forward(model)
        _, lm2 = landmark_loss(model, out.vertices, focal_b())
    return FitResult(
        identity=expand(P["identity"]).detach().clone(), expression=P["expression"].detach().clone(),
        jaw=(P["jaw"] * torch.tensor([1.0, 0.2, 0.2])).detach().clone(),
        rotation=P["rotation"].detach().clone(), translation=model_translation(model).detach().clone(),
        focal=focal_b().detach().clone(), sh=sh.detach(), albedo=None if albedo is None else albedo.detach(),
        vertices=out.vertices.detach(), landmarks2d=lm2.detach(), width=width, height=height, history=history,
    )


def face_triangles(model: MorphableModel) -> Tensor:
    """(F_face, 3) int64 triangles with all three vertices in the model's ``face`` region."""
    return faces_within(model.faces, model.region_mask("face"))


def face_crops(images: Tensor, landmarks: Tensor, size: int, margin: float = 1.6) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Square crops around each face, resized to ``size`` px.

    Args:
        images: (B, H, W, 3) float. landmarks: (B, 68, 2) px (defines the crop).
        size: output side in px. margin: crop side / landmark bounding-box side.

    Returns:
        ``crops`` (B, size, size, 3), ``valid`` (B, size, size, 1) (0 where the crop left the
        photo), ``edge`` (B, 2) px position of the crop's top-left pixel *edge* in the photo,
        ``k`` (B,) scale (crop px per photo px): photo pixel x maps to ``(x - edge) k - 0.5``.
    """
    B, H, W, _ = images.shape
    lo, hi = landmarks.min(1).values, landmarks.max(1).values
    centre = (lo + hi) / 2
    side = ((hi - lo).max(-1).values * margin).clamp_min(8)
    crops, valid, edges, ks = [], [], [], []
    for b in range(B):  # B crops (images), not pixels
        S = int(round(float(side[b])))
        x0 = int(round(float(centre[b, 0]) - S / 2))
        y0 = int(round(float(centre[b, 1]) - S / 2))
        img = images[b].permute(2, 0, 1)
        one = torch.ones(1, H, W, dtype=img.dtype)
        pad = (max(0, -x0), max(0, x0 + S - W), max(0, -y0), max(0, y0 + S - H))
        imgp = F.pad(torch.cat([img, one]), pad)
        xs, ys = x0 + pad[0], y0 + pad[2]
        c = imgp[:, ys:ys + S, xs:xs + S][None]
        c = F.interpolate(c, size=(size, size), mode="area")[0].permute(1, 2, 0)
        crops.append(c[..., :3])
        valid.append((c[..., 3:] > 0.99).to(c.dtype))
        edges.append(torch.tensor([x0 - 0.5, y0 - 0.5]))
        ks.append(size / S)
    return torch.stack(crops), torch.stack(valid), torch.stack(edges), torch.tensor(ks)


def _photo_losses(sub, forward, landmark_loss, focal_b, renderer, crops, size, cx, cy, colours, sh,
                  robust: float = 0.0) -> tuple[Tensor, Tensor]:
    """Render ``sub`` (with (B, V_sub, 3) ``colours`` and (B, 9, 3) ``sh``) into the face crops of
    :func:`face_crops` at ``size`` px and compare with them. Returns the mean per-pixel colour
    error over covered pixels (Cauchy-weighted with scale ``robust`` when > 0) and the landmark
    loss of the same forward pass."""
    target, valid, edge, k = crops
    out = forward(sub)
    f = focal_b()
    l_lm, _ = landmark_loss(sub, out.vertices, f)
    cam = make_camera(f * k, size, size, (cx - edge[:, 0]) * k - 0.5, (cy - edge[:, 1]) * k - 0.5)
    r = renderer(out.vertices, sub.faces, cam, vertex_colors=colours, sh_coeffs=sh)
    a = r.alpha * valid
    e = (r.rgb - target).abs().mean(-1, keepdim=True)  # (B, S, S, 1) per-pixel colour error
    if robust > 0:  # Cauchy: pixels the model's colours cannot explain (brows, make-up) count less
        e = robust * torch.log1p(e / robust)
    return (a * e).sum() / a.sum().clamp_min(1), l_lm


def _photometric(model, P, forward, landmark_loss, priors, clamp_, focal_b, images, cfg, renderer,
                 sh, history, width, height, shape_on: bool):
    B = images.shape[0]
    fsub, kept = restrict_model(model, model.region("face"), face_triangles(model))
    with torch.no_grad():
        lm_now = project(model.landmark_positions(forward(model).vertices), focal_b(), width, height)
        # Initial albedo: the photo's median colour inside the landmarks' bounding box.
        cols = []
        for b in range(B):  # B images, not pixels
            x0, y0 = lm_now[b].min(0).values.clamp_min(0).long().tolist()
            x1, y1 = lm_now[b].max(0).values.long().tolist()
            patch = images[b, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].reshape(-1, 3)
            cols.append(patch.median(0).values if patch.numel() else torch.full((3,), 0.5))
        base = torch.stack(cols)[:, None].expand(B, fsub.n_vertices, 3).clone()
    cx = torch.full((B,), (width - 1) / 2)
    cy = torch.full((B,), (height - 1) / 2)
    if shape_on:
        sh, colour = _shape_stage(model, P, forward, landmark_loss, priors, clamp_, focal_b, images, cfg,
                                  renderer, sh, base[:, :1].clone(), lm_now, cx, cy, history)
        base = colour.expand(B, fsub.n_vertices, 3).clone()
    albedo = base.clone().requires_grad_(True)
    sh = sh.detach().clone().requires_grad_(True)
    for steps, size in zip(cfg.photo_steps, cfg.photo_sizes):
        crops = face_crops(images, lm_now, size)
        opt = torch.optim.Adam([
            # Identity stays where the shape stage left it: with a free per-vertex albedo, shading
            # is explained as easily by albedo as by shape (measured: letting identity move here
            # made the synthetic metric error worse).
            {"params": [P["rotation"], P["expression"], P["jaw"]], "lr": cfg.lr * 0.3},
            {"params": [P["t_n"]], "lr": 0.3 * cfg.lr},
            {"params": [P["log_f"]], "lr": 0.003},
            {"params": [albedo, sh], "lr": 0.03},
        ])
        losses = []
        for _ in range(steps):
            l_ph, l_lm = _photo_losses(fsub, forward, landmark_loss, focal_b, renderer, crops, size, cx, cy, albedo, sh)
            l_alb = ((albedo - base) ** 2).mean()
            loss = cfg.w_photo * l_ph + cfg.w_landmark * l_lm + priors() + cfg.w_albedo * l_alb
            opt.zero_grad()
            loss.backward()
            opt.step()
            clamp_()
            with torch.no_grad():
                albedo.clamp_(0, 1)
            losses.append(float(l_ph.detach()))
        history[f"photo_{size}"] = losses
    # Albedo for the whole mesh: fitted on the face, the face's mean colour elsewhere.
    full = albedo.detach()[:, : kept.numel()].mean(1, keepdim=True).expand(B, model.n_vertices, 3).clone()
    full[:, kept] = albedo.detach()[:, : kept.numel()]
    return sh, full


def _shape_stage(model, P, forward, landmark_loss, priors, clamp_, focal_b, images, cfg, renderer, sh,
                 colour, lm_now, cx, cy, history):
    """Photometric shape stage: identity, pose, expression, jaw, focal, SH and one skin colour per
    image against the photo, on the face's skin (eyes, lips, mouth left out). With one colour per
    image, shading differences can only come from the surface's normals, i.e. from shape; this is
    where the image adds what 68 noisy landmarks cannot show (depth profile, cheek and forehead
    curvature). Returns the fitted (B, 9, 3) SH and (B, 1, 3) colour (detached)."""
    skin = model.region_mask("face") & ~model.region_mask(
        "eyes", "lips", "mouth_interior", "eyeball_left", "eyeball_right", missing_ok=True)
    ssub, _ = restrict_model(model, skin.nonzero()[:, 0], faces_within(model.faces, skin))
    colour = colour.clone().requires_grad_(True)
    sh = sh.clone().requires_grad_(True)
    B = images.shape[0]
    for steps, size in zip(cfg.shape_steps, cfg.shape_sizes):
        crops = face_crops(images, lm_now, size)
        opt = torch.optim.Adam([
            {"params": [P["identity"]], "lr": cfg.shape_lr},
            {"params": [P["rotation"], P["expression"], P["jaw"]], "lr": cfg.lr * 0.3},
            {"params": [P["t_n"]], "lr": 0.3 * cfg.lr},
            {"params": [P["log_f"]], "lr": 0.003},
            {"params": [colour, sh], "lr": 0.03},
        ])
        lr0 = [g["lr"] for g in opt.param_groups]
        losses = []
        for it in range(steps):
            fac = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * it / steps))  # cosine decay to 10 %
            for g, l0 in zip(opt.param_groups, lr0):
                g["lr"] = l0 * fac
            if it < cfg.shape_warmup:  # lighting, colour and pose settle before the shape moves
                opt.param_groups[0]["lr"] = 0.0
            l_ph, l_lm = _photo_losses(ssub, forward, landmark_loss, focal_b, renderer, crops, size, cx, cy,
                                       colour.expand(B, ssub.n_vertices, 3), sh, cfg.shape_robust)
            loss = cfg.w_photo * l_ph + cfg.w_landmark * l_lm + priors(cfg.w_identity_shape)
            opt.zero_grad()
            loss.backward()
            opt.step()
            clamp_()
            with torch.no_grad():
                colour.clamp_(0, 1)
            losses.append(float(l_ph.detach()))
        history[f"shape_{size}"] = losses
    return sh.detach(), colour.detach()
