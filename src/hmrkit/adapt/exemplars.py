"""DynaBOA's 3D exemplar bank: labelled synthetic training samples grouped by what the
regressor's encoder makes of them, to anchor an adapting regressor to its source domain.

Built offline (``build_bank``, ``scripts/build_exemplars.py``): a fixed-seed set of the
*train* split's synthetic samples (``hmrkit.train.data.build_trainset``: poses, bodies,
cameras and realistic detector noise as training saw them, mediapipe33 without world
landmarks), encoded by the method's shipped network (its pooled ``Features``), clustered
with spherical k-means (unit features, cosine similarity); per cluster the ``per_cluster``
samples nearest its centre are kept, with their noisy detections, camera and 3D labels
(pose, shape, the exact mediapipe33 keypoints). Online, ``nearest`` finds the cluster whose
centre is most similar (cosine) to the current frame's feature and ``draw`` picks its
exemplars to co-train on.

File: ``hmrkit/weights/exemplars_<method>_<body>.npz`` (a few hundred kB), with the
command that built it and a fingerprint of the network whose features it clusters (the
bank of another network's features is refused at load).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hmrkit.errors import InputError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def default_bank(method: str, body_name: str) -> Path:
    return WEIGHTS_DIR / f"exemplars_{method}_{body_name}.npz"


def spherical_kmeans(x: Tensor, k: int, iters: int = 50, seed: int = 0) -> tuple[Tensor, Tensor]:
    """x (N, D) -> (centres (k, D) unit, assignment (N,) long): k-means on the unit sphere
    (cosine similarity), k-means++ seeding; an emptied cluster is re-seeded at the point
    least similar to its centre."""
    x = torch.nn.functional.normalize(x.double(), dim=-1)
    g = torch.Generator().manual_seed(seed)
    N = x.shape[0]
    centres = [x[int(torch.randint(N, (1,), generator=g))]]
    for _ in range(1, k):  # k-means++ on the cosine distance
        d = (1 - x @ torch.stack(centres).T).clamp(min=0).min(1).values
        p = d / d.sum() if float(d.sum()) > 0 else torch.full_like(d, 1.0 / N)
        centres.append(x[int(torch.multinomial(p, 1, generator=g))])
    c = torch.stack(centres)
    assign = torch.zeros(N, dtype=torch.long)
    for _ in range(iters):
        sim = x @ c.T
        new = sim.argmax(1)
        for j in range(k):
            m = new == j
            if m.any():
                c[j] = torch.nn.functional.normalize(x[m].sum(0), dim=0)
            else:  # empty: the worst-served point
                far = int(sim.max(1).values.argmin())
                c[j] = x[far]
                new[far] = j
        if torch.equal(new, assign):
            break
        assign = new
    return c.float(), assign


@dataclass(frozen=True)
class ExemplarBank:
    """centres (k, D) unit; cluster (n,) of each exemplar; kp (n, 33, 3) px + confidence
    (mediapipe33 detections); K (n, 3, 3); image_size (H, W); global_orient (n, 3, 3),
    pose (n, Jr, 3, 3) of the regressed joints, shape (n, S); X (n, 33, 3) exact mediapipe33
    keypoints, camera frame, metres; method, body, network (fingerprint), card."""

    centres: Tensor
    cluster: Tensor
    kp: Tensor
    K: Tensor
    image_size: tuple
    global_orient: Tensor
    pose: Tensor
    shape: Tensor
    X: Tensor
    method: str
    body: str
    network: str
    card: dict

    def __len__(self) -> int:
        return int(self.kp.shape[0])

    def nearest(self, feature: Tensor) -> int:
        """The cluster whose centre is most similar (cosine) to ``feature`` (D,)."""
        f = torch.nn.functional.normalize(feature.detach().float().reshape(-1), dim=0)
        return int((self.centres @ f).argmax())

    def draw(self, cluster: int, m: int, generator: torch.Generator) -> Tensor:
        """``m`` exemplar indices of ``cluster``, at random (with replacement if it has fewer)."""
        idx = torch.nonzero(self.cluster == cluster)[:, 0]
        if len(idx) == 0:
            idx = torch.arange(len(self))
        return idx[torch.randint(len(idx), (m,), generator=generator)]

    def save(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, centres=self.centres.numpy().astype(np.float32), cluster=self.cluster.numpy().astype(np.int16),
            kp=self.kp.numpy().astype(np.float32), K=self.K.numpy().astype(np.float32),
            image_size=np.array(self.image_size, dtype=np.int64),
            global_orient=self.global_orient.numpy().astype(np.float32), pose=self.pose.numpy().astype(np.float32),
            shape=self.shape.numpy().astype(np.float32), X=self.X.numpy().astype(np.float32),
            method=np.array(self.method), body=np.array(self.body), network=np.array(self.network),
            card=np.array(json.dumps(self.card, sort_keys=True)))

    @staticmethod
    def load(path) -> "ExemplarBank":
        z = np.load(path, allow_pickle=False)
        t = lambda k: torch.from_numpy(np.asarray(z[k]))  # noqa: E731
        return ExemplarBank(t("centres").float(), t("cluster").long(), t("kp").float(), t("K").float(),
                            tuple(int(v) for v in z["image_size"]), t("global_orient").float(), t("pose").float(),
                            t("shape").float(), t("X").float(), str(z["method"]), str(z["body"]),
                            str(z["network"]), json.loads(str(z["card"])))


def load_bank(method: str, body, network: str, path=None) -> ExemplarBank:
    """The bank of ``method`` for ``body`` (default: the shipped one), checked against the
    fingerprint of the network that will adapt (``network``)."""
    p = Path(path) if path is not None else default_bank(method, body.name)
    if not p.exists():
        raise InputError(p, f"no exemplar bank for {method} on the {body.name} body model; build it with "
                            f"scripts/build_exemplars.py --method {method}, or adapt without exemplars")
    bank = ExemplarBank.load(p)
    if bank.method != method or bank.body != body.name:
        raise InputError(p, f"an exemplar bank of {bank.method} on {bank.body}, not of {method} on {body.name}")
    if bank.network != network:
        raise InputError(p, "the exemplar bank clusters the features of other weights than these "
                            f"({bank.network} != {network}); rebuild it with scripts/build_exemplars.py")
    return bank


def build_bank(estimator, method: str, n: int = 8000, k: int = 32, per_cluster: int = 4, seed: int = 7,
               progress=None) -> ExemplarBank:
    """The bank of ``estimator`` (an adaptable regressor: ``hmrkit.adapt.dynaboa.Network``)
    from ``n`` train-split samples: ``k`` spherical k-means clusters of their features,
    ``per_cluster`` exemplars nearest each centre."""
    from hmrkit.adapt.dynaboa import Network
    from hmrkit.models.weights import state_fingerprint
    from hmrkit.train.data import CONVENTION, TrainSetConfig, build_trainset

    body = estimator.body
    ts = build_trainset(body, TrainSetConfig(n=n, seed=seed, labelled=1.0, conventions=(CONVENTION,)))
    net = Network(estimator)
    feats = []
    H, W = ts.image_size
    with torch.no_grad():
        for s in range(0, n, 256):
            kp, K = ts.det[s:s + 256], ts.K[s:s + 256]
            inputs = net.exemplar_inputs(kp, K, (H, W))
            f, _ = net.encode_frames(net.module, inputs)
            feats.append(f)
            if progress is not None:
                progress(len(kp))
    feats = torch.cat(feats)
    centres, assign = spherical_kmeans(feats, k, seed=seed)
    sim = torch.nn.functional.normalize(feats, dim=-1) @ centres.T
    keep, cl = [], []
    for j in range(k):
        idx = torch.nonzero(assign == j)[:, 0]
        if len(idx) == 0:
            continue
        best = idx[sim[idx, j].argsort(descending=True)[:per_cluster]]
        keep.append(best)
        cl.append(torch.full((len(best),), j, dtype=torch.long))
    keep, cl = torch.cat(keep), torch.cat(cl)
    p = ts.params
    ji = torch.as_tensor(net.joint_index)
    sizes = torch.bincount(assign, minlength=k)
    card = {"samples": n, "clusters": k, "per_cluster": per_cluster, "seed": seed, "split": "train",
            "features": f"{method}'s pooled features ({feats.shape[1]})",
            "cluster sizes min/median/max": [int(sizes.min()), int(sizes.median()), int(sizes.max())],
            "mean cosine to own centre": round(float(sim.gather(1, assign[:, None]).mean()), 4)}
    return ExemplarBank(centres, cl, ts.det[keep].clone(), ts.K[keep].clone(), (H, W),
                        p.global_orient[keep].clone(), p.pose[keep][:, ji].clone(), p.shape[keep].clone(),
                        ts.X[keep].clone(), method, body.name, state_fingerprint(net.module.state_dict()), card)
