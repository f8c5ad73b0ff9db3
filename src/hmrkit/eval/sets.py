"""The fixed-seed synthetic test sets (``synthetic:frames|rendered|sequences``): ground
truth and the estimator's inputs, fixed by the spec's seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from hmrkit.errors import InputError
from hmrkit.eval.detection import default_detector, inputs_from_evidence, match_detection
from hmrkit.eval.runner import EvalInputs
from hmrkit.eval.specs import SyntheticSpec


@dataclass(frozen=True)
class SyntheticSet:
    """A built synthetic set: ground truth and the estimator's inputs.

    params: BodyParams (N, ...) ground truth, camera frame; inputs: EvalInputs;
    image_size: (H, W); notes: {key: str} (e.g. how many images had nobody detected)."""

    spec: SyntheticSpec
    params: object
    inputs: EvalInputs
    image_size: tuple
    notes: dict = field(default_factory=dict)


def _world_landmarks(body, out, sigma: float, seed: int) -> Tensor:
    """(B, 33, 4): mediapipe33 keypoints relative to the hip midpoint with Gaussian noise of
    ``sigma`` metres per axis, confidence 1 (simulated MediaPipe world landmarks)."""
    X = body.keypoints(out, "mediapipe33")
    g = torch.Generator().manual_seed(int(seed))
    rel = X - 0.5 * (X[:, 23:24] + X[:, 24:25]) + sigma * torch.randn(X.shape, generator=g, dtype=X.dtype)
    return torch.cat([rel, torch.ones(*X.shape[:2], 1, dtype=X.dtype)], -1)


def _noise(spec: SyntheticSpec):
    from hmrkit.data.synthetic import NoiseConfig

    if spec.noise == "clean":
        return NoiseConfig.clean()
    noise = NoiseConfig.realistic()
    return noise.noisier(2.0) if spec.shift == "noisy" else noise


# The frames set's scenes: SceneConfig's defaults (720 px, 2.5-6 m, 40-70 degree field of
# view) with headings within +-60 degrees of facing the camera.
FRAMES_YAW_DEG = 60.0


def phenotypes_of(split: str) -> str:
    """Bodies of a split's sets: the unseen splits use every phenotype (children to
    elders); the in-distribution ``train`` set keeps the central ones it always had."""
    return "central" if split == "train" else "all"


def _build_frames(body, spec: SyntheticSpec) -> SyntheticSet:
    from hmrkit.data.synthetic import SceneConfig, keypoints2d, sample_scenes

    scenes = sample_scenes(body, spec.n, seed=spec.seed, config=SceneConfig(
        yaw_deg=FRAMES_YAW_DEG, split=spec.split, phenotypes=phenotypes_of(spec.split)))
    occ, edge = _occlusion(body, scenes, spec)
    kp = keypoints2d(body, scenes, spec.input, _noise(spec), seed=spec.seed + 1, occluders=occ)
    if edge is not None:
        from hmrkit.data.synthetic import in_frame

        kp = torch.cat([kp[..., :2], kp[..., 2:] * in_frame(kp[..., :2], edge)[..., None]], -1)
    k3 = None
    if spec.world3d > 0:
        with torch.no_grad():
            k3 = _world_landmarks(body, body(scenes.params), spec.world3d, spec.seed + 2)
    inputs = EvalInputs(kp, spec.input, scenes.K, k3, torch.ones(spec.n, dtype=torch.bool),
                        torch.tensor(scenes.image_size).expand(spec.n, 2).clone())
    return SyntheticSet(spec, scenes.params, inputs, scenes.image_size)


# The closeups set's scenes: the chest at the image centre, 0.9-1.5 m away.
CLOSEUPS_DISTANCE = (0.9, 1.5)
CLOSEUPS_YAW_DEG = 45.0


def closeup_scenes(body, n: int, seed: int, split: str = "test"):
    """n upper-body close-ups (``synthetic:closeups``): library poses of ``split`` with both
    hands posed by the gesture sampler and a sampled facial expression, the camera
    0.9-1.5 m from the chest, which sits at the image centre -> (SyntheticBatch,
    gestures (n, 2) left/right, expression groups per face)."""
    from dataclasses import replace

    from hmrkit.data.hands import sample_expressions, with_hands
    from hmrkit.data.synthetic import SceneConfig, sample_scenes

    scenes = sample_scenes(body, n, seed=seed, config=SceneConfig(
        yaw_deg=CLOSEUPS_YAW_DEG, distance=CLOSEUPS_DISTANCE, offset=0.05, fov_deg=(40.0, 60.0), split=split,
        phenotypes=phenotypes_of(split)))
    p = scenes.params
    pose, gestures = with_hands(body, p.pose, seed=seed + 3)
    expression, shown = sample_expressions(body, n, seed=seed + 4)
    p = replace(p, pose=pose, expression=expression if expression is not None else p.expression)
    with torch.no_grad():
        X = body.forward_keypoints(p, ("mediapipe33",))["mediapipe33"]
    chest = 0.7 * 0.5 * (X[:, 11] + X[:, 12]) + 0.3 * 0.5 * (X[:, 23] + X[:, 24])
    pelvis = 0.5 * (X[:, 23] + X[:, 24])
    p = replace(p, transl=p.transl - (chest - pelvis))
    return replace(scenes, params=p), gestures, shown


def _build_closeups(body, spec: SyntheticSpec, detector=None) -> SyntheticSet:
    from hmrkit import conventions as C
    from hmrkit.data.synthetic import keypoints2d, true_keypoints

    scenes, gestures, _ = closeup_scenes(body, spec.n, spec.seed, spec.split)
    notes = {}
    if spec.render:
        from hmrkit.data.render_synthetic import render_sample

        _, uv, valid = true_keypoints(body, scenes, "holistic")
        H, W = scenes.image_size
        own = detector is None
        if own:
            detector = default_detector()
        evidence = []
        try:
            for i in range(spec.n):
                p = scenes.params[i:i + 1]
                r = render_sample(body, p, scenes.K[i], (H, W), seed=spec.seed * 1000 + i)
                u = uv[i].numpy()
                ins = valid.numpy() & (u[:, 0] >= 0) & (u[:, 0] < W) & (u[:, 1] >= 0) & (u[:, 1] < H)
                box = np.concatenate([u[ins].min(0), u[ins].max(0)])
                evidence.append(match_detection(detector.detect(r.rgb), box))
        finally:
            if own:
                detector.close()
        inputs = inputs_from_evidence(evidence, scenes.K)
        notes["nobody detected"] = f"{sum(e is None for e in evidence)} of {spec.n}"
        kp = inputs.keypoints2d
    else:
        kp = keypoints2d(body, scenes, "holistic", _noise(spec), seed=spec.seed + 1)
        inputs = EvalInputs(kp, "holistic", scenes.K, None, torch.ones(spec.n, dtype=torch.bool),
                            torch.tensor(scenes.image_size).expand(spec.n, 2).clone())
    names = C.get("holistic").names
    seen = {s: int((kp[:, [names.index(f"{s}_hand.{k}") for k in C.HAND21], 2] > 0).any(-1).sum())
            for s in ("left", "right")}
    face = int((kp[:, [i for i, n in enumerate(names) if n.startswith("face.")], 2] > 0).any(-1).sum())
    notes.update({"hand evidence": f"left {seen['left']}, right {seen['right']} of {spec.n}",
                  "face evidence": f"{face} of {spec.n}"})
    return SyntheticSet(spec, scenes.params, inputs, scenes.image_size, notes)


def _occlusion(body, scenes, spec: SyntheticSpec):
    """The frames set's occluders (B, 4) and frame edges (B, 3) (``sample_occluders``,
    ``sample_truncation`` on the true mediapipe33 keypoints, seeded by the spec), None
    where the spec asks for none. The occluders' draws do not move the evidence's noise
    (common random numbers), so ``occlusion=0`` and ``occlusion=1`` share the rest."""
    from hmrkit.data.synthetic import sample_occluders, sample_truncation, true_keypoints

    if not (spec.occlusion or spec.truncation):
        return None, None
    _, uv, valid = true_keypoints(body, scenes, "mediapipe33")
    occ = edge = None
    if spec.occlusion:
        occ = sample_occluders(uv, valid, torch.Generator().manual_seed(spec.seed + 7), spec.occlusion)
    if spec.truncation:
        edge = sample_truncation(uv, valid, torch.Generator().manual_seed(spec.seed + 8), spec.truncation)
    return occ, edge


def paste_occluder(image: np.ndarray, box, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 with the box x0, y0, x1, y1 px painted over: a
    random flat colour with multi-scale noise (an object, not a grey test patch)."""
    out = image.copy()
    H, W = out.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    x0, x1, y0, y1 = max(0, x0), min(W, x1), max(0, y0), min(H, y1)
    if x1 <= x0 or y1 <= y0:
        return out
    h, w = y1 - y0, x1 - x0
    base = rng.integers(30, 226, 3).astype(np.float64)
    tex = rng.normal(0, 1, (max(1, h // 8), max(1, w // 8), 1))
    tex = np.kron(tex, np.ones((8, 8, 1)))[:h, :w]
    tex = np.pad(tex, ((0, h - tex.shape[0]), (0, w - tex.shape[1]), (0, 0)), mode="edge")
    fine = rng.normal(0, 1, (h, w, 1))
    out[y0:y1, x0:x1] = np.clip(base + 25 * tex + 8 * fine, 0, 255).astype(np.uint8)
    return out


def rendered_scene(size: int):
    """The rendered set's scenes: ``size`` px square images, cameras 2.2-5.5 m away with a
    40-60 degree field of view (as the noise calibration's renders), headings within
    +-60 degrees of facing the camera, poses and bodies of the unseen test split (as the
    frames set's default)."""
    from hmrkit.data.synthetic import SceneConfig

    return SceneConfig(image_size=(size, size), fov_deg=(40.0, 60.0), distance=(2.2, 5.5), yaw_deg=FRAMES_YAW_DEG,
                       split="test", phenotypes=phenotypes_of("test"))


def _build_rendered(body, spec: SyntheticSpec, detector=None) -> SyntheticSet:
    from hmrkit.data.render_synthetic import RenderConfig, generate
    from hmrkit.types import BodyParams

    own = detector is None
    if own:
        detector = default_detector()
    render = RenderConfig(background_dir=spec.backgrounds) if spec.backgrounds else RenderConfig()
    evidence, Ks, params = [], [], []
    missed = occluded = 0
    try:
        for s in generate(body, spec.n, seed=spec.seed, rendered=True, scene=rendered_scene(spec.size),
                          render=render, conventions=("coco17", "mediapipe33")):
            gt = s.keypoints2d["coco17"].numpy()
            box = _keypoint_box(gt)
            rgb = s.rgb
            if spec.occlusion:
                from hmrkit.data.synthetic import sample_occluders

                g = torch.Generator().manual_seed(int(np.random.SeedSequence([spec.seed, s.index, 7]).generate_state(1)[0]))
                uv = s.keypoints2d["mediapipe33"][None, :, :2]
                occ = sample_occluders(uv, s.keypoints2d["mediapipe33"][:, 2] > 0, g, spec.occlusion)[0]
                if bool(torch.isfinite(occ).all()):
                    rgb = paste_occluder(rgb, occ.numpy(), np.random.default_rng([spec.seed, s.index, 8]))
                    occluded += 1
            ev = match_detection(detector.detect(rgb), box) if box is not None else None
            params.append(s.params)
            Ks.append(s.K)
            missed += ev is None
            evidence.append(ev)
    finally:
        if own:
            detector.close()
    inputs = inputs_from_evidence(evidence, torch.stack(Ks))
    notes = {"nobody detected": f"{missed} of {spec.n}"}
    if spec.occlusion:
        notes["occluded"] = f"{occluded} of {spec.n}"
    return SyntheticSet(spec, BodyParams.cat(params), inputs, (spec.size, spec.size), notes)


def _build_sequences(body, spec: SyntheticSpec) -> SyntheticSet:
    from hmrkit.data.render_synthetic import keypoints_from_output
    from hmrkit.data.sequences import SequenceCameraConfig, load_sequences, sample_sequence
    from hmrkit.types import BodyParams

    try:
        if spec.library == "streams":
            from hmrkit.data.sequences import WEIGHTS_DIR as _W

            lib = load_sequences(body.name, path=_W / f"streams_{body.name}.npz")
        else:
            lib = load_sequences(body.name)
    except FileNotFoundError:
        raise InputError(None, f"synthetic:sequences: no shipped sequence library for the {body.name} body "
                               "model; evaluate on it with --body anny") from None
    if spec.frames > lib.num_frames:
        raise InputError(None, f"{spec.name}: frames must be at most {lib.num_frames} (the clips' length)")
    from hmrkit.data.splits import split_of

    pool = np.array([i for i, src in enumerate(lib.source) if spec.split == "all" or split_of(src) == spec.split])
    if len(pool) == 0:
        raise InputError(None, f"{spec.name}: the shipped sequence library has no clips of split {spec.split!r}")
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x5E9]))
    order = pool[rng.permutation(len(pool))]
    # the rendered frames are square, size px; the same draws give the same motion and camera
    config = SequenceCameraConfig(image_size=(spec.size, spec.size)) if spec.render else SequenceCameraConfig()
    config = shifted_camera(config, spec.shift)
    noise = _noise(spec)
    evidence = []
    params, K, kp, k3, clips = [], [], [], [], []
    for c in range(spec.n):
        cseed = int(np.random.SeedSequence([spec.seed, c]).generate_state(1)[0])
        seq = sample_sequence(body, int(order[c % len(order)]), seed=cseed, config=config, conventions=(),
                              library=lib, shape=shifted_shape(body, spec.shift, cseed))
        start = int(rng.integers(0, lib.num_frames - spec.frames + 1))
        p = seq.params[start:start + spec.frames]
        with torch.no_grad():
            out = body(p)
        Kc = seq.K[start:start + spec.frames]
        if spec.render:
            evidence += detect_clip(render_clip(body, out.vertices, Kc, seq.image_size, cseed + 3),
                                    person_boxes(body, out, Kc, seq.image_size))
        elif spec.temporal:
            kp.append(_temporal_keypoints(body, out, Kc, seq.image_size, spec.input, noise, cseed + 1))
        else:
            kp.append(keypoints_from_output(body, out, Kc, seq.image_size, spec.input, noise, cseed + 1))
        if spec.world3d > 0:
            k3.append(_world_landmarks(body, out, spec.world3d, cseed + 2))
        a = sum(x.batch_size for x in params)
        clips.append((a, a + spec.frames))
        params.append(p)
        K.append(Kc)
    n = spec.n * spec.frames
    notes = {"clips": f"{spec.n} x {spec.frames} frames at {lib.fps:g} fps"}
    if spec.render:
        from dataclasses import replace

        inputs = replace(inputs_from_evidence(evidence, torch.cat(K)), clips=tuple(clips))
        notes["nobody detected"] = f"{sum(e is None for e in evidence)} of {n} frames"
    else:
        inputs = EvalInputs(torch.cat(kp), spec.input, torch.cat(K), torch.cat(k3) if k3 else None,
                            torch.ones(n, dtype=torch.bool), torch.tensor(config.image_size).expand(n, 2).clone(),
                            tuple(clips))
    return SyntheticSet(spec, BodyParams.cat(params), inputs, config.image_size, notes)


def shifted_camera(config, shift: str):
    """The SequenceCameraConfig of a domain shift (``SyntheticSpec.shift``); unchanged for
    the others: a camera low (0.2-0.5 m) or high (2.8-3.5 m) above the floor, a long
    (15-25 degrees) or short (85-100 degrees) focal length. Training's cameras are 0.6-2 m
    high with 40-70 degrees."""
    from dataclasses import replace

    return {"low": replace(config, height=(0.2, 0.5)), "high": replace(config, height=(2.8, 3.5)),
            "tele": replace(config, fov_deg=(15.0, 25.0)), "wide": replace(config, fov_deg=(85.0, 100.0))
            }.get(shift, config)


def shifted_shape(body, shift: str, seed: int):
    """A clip's body for a shift: ``child`` (age 0.2-0.35) or ``elder`` (0.9-1), the other
    phenotypes uniform (Anny); "fitted" (the clip's retargeted shape) otherwise."""
    if shift not in ("child", "elder") or "age" not in getattr(body, "shape_names", ()):
        return "fitted"
    g = np.random.default_rng(np.random.SeedSequence([seed, 0xA9E]))
    shape = g.uniform(0, 1, body.num_shape)
    lo, hi = (0.2, 0.35) if shift == "child" else (0.9, 1.0)
    shape[body.shape_names.index("age")] = g.uniform(lo, hi)
    return torch.as_tensor(shape, dtype=body.dtype)


def _temporal_keypoints(body, out, K: Tensor, image_size, convention: str, noise, seed: int) -> Tensor:
    """(T, K, 3) detector-like keypoints of one clip's frames (body output ``out`` (T, ...),
    K (T, 3, 3)), the noise correlated over the frames: ``add_temporal_noise`` with the
    calibrated ``TemporalNoiseConfig()``."""
    from hmrkit.data.synthetic import TemporalNoiseConfig, add_temporal_noise, body_keypoints
    from hmrkit.geometry.camera import project

    X, valid = body_keypoints(body, out, convention)
    uv = project(X, K.to(X.dtype))
    return add_temporal_noise(X[None], uv[None], valid, convention, image_size, noise, TemporalNoiseConfig(), seed)[0]


def person_boxes(body, out, K: Tensor, image_size) -> list:
    """Per frame of a body output (T, ...) seen through K (T, 3, 3): the box (4,) xyxy px of
    the true COCO-17 keypoints inside the image (``match_detection``'s person), or None."""
    from hmrkit.data.render_synthetic import keypoints_from_output

    gt = keypoints_from_output(body, out, K, image_size, "coco17").numpy()
    return [_keypoint_box(g) for g in gt]


def render_clip(body, vertices: Tensor, K: Tensor, image_size, seed: int, config=None):
    """Yield the (H, W, 3) uint8 frames of one clip: posed vertices (T, V, 3) camera frame,
    metres, K (T, 3, 3) px, rendered as ``render_sample`` renders a person, with one
    appearance for the whole clip: the skin tone, clothing and light it draws from
    ``seed``, over one procedural background (also from ``seed``). ``config``: a
    ``RenderConfig`` (None: the default, as the ``rendered`` set)."""
    from hmrkit.data.render_synthetic import RenderConfig, _render_vertices, procedural_background

    config = RenderConfig() if config is None else config
    bg = procedural_background(image_size, np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EB])))
    for t in range(vertices.shape[0]):
        yield _render_vertices(body, vertices[t], K[t].numpy(), image_size, bg, None, None, int(seed), None,
                               config).rgb


def video_detector(**overrides):
    """MediaPipe Holistic in video mode (``static_image_mode=False``: it tracks the person
    from frame to frame, with its landmark smoothing), for the frames of one clip."""
    from hmrkit.detect import MediaPipeHolistic, MediaPipeHolisticConfig

    return MediaPipeHolistic(MediaPipeHolisticConfig(static_image_mode=False, **overrides))


def detect_clip(frames, boxes: list, detector=None) -> list:
    """Per frame of one clip (``frames``: RGB images in order) the Evidence of the person
    in ``boxes[t]`` (``match_detection``), or None: nobody found on the person. The frames
    go in order through ``detector`` (None: a fresh ``video_detector()``, closed after
    the clip); a frame with no box (the person outside the image) still goes through, so
    the tracker sees every frame."""
    own = detector is None
    det = video_detector() if own else detector
    found = []
    try:
        for rgb, box in zip(frames, boxes):
            ev = det.detect(rgb)
            found.append(match_detection(ev, box) if box is not None else None)
    finally:
        if own:
            det.close()
    return found


def build_synthetic(body, spec: SyntheticSpec, detector=None) -> SyntheticSet:
    """The set of ``spec`` for ``body``: ground truth and the estimator's inputs.
    detector: for ``rendered`` (None: MediaPipe Holistic in static image mode)."""
    try:
        if spec.kind == "frames":
            return _build_frames(body, spec)
        if spec.kind == "rendered":
            return _build_rendered(body, spec, detector)
        if spec.kind == "closeups":
            return _build_closeups(body, spec, detector)
        return _build_sequences(body, spec)
    except FileNotFoundError as e:  # no shipped pose library for this body model
        raise InputError(None, f"{spec.name}: {str(e).splitlines()[0]}; the synthetic sets ship for "
                               "--body anny") from None


def _keypoint_box(kp: np.ndarray) -> Optional[np.ndarray]:
    """(K, 3) px + confidence -> (4,) xyxy box of the confident keypoints, or None."""
    sel = kp[:, 2] > 0
    if not sel.any():
        return None
    xy = kp[sel, :2]
    return np.concatenate([xy.min(0), xy.max(0)]).astype(np.float64)
