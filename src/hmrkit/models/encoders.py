"""Evidence encoders: CropInputs -> ``Features`` per person (``hmrkit.types``).

Two encoders read the same 2D evidence (DESIGN: no pretrained image backbone ships):
``TokenEncoder`` sees one token per keypoint and gives ``Features(pooled, tokens)``;
``MapEncoder`` sees pixel-aligned evidence maps (heat maps, limbs, person mask) through a
small CNN and gives ``Features(pooled, volume)``. A global head (HMR) reads ``pooled``
(``out_dim`` wide), a part-attention head (PARE) the ``volume``, a temporal encoder (MAED)
the per-frame ``tokens``. An RGB backbone plugs in as a module with the same
``forward(inputs) -> Features`` and ``out_dim``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hmrkit.models.inputs import INPUT_CONVENTION, CropInputs, evidence_maps
from hmrkit.types import Features

# conventions a token encoder can be told about; index = the embedding row
TOKEN_CONVENTIONS = (INPUT_CONVENTION,)


@dataclass(frozen=True)
class EncoderConfig:
    kind: str = "tokens"  # tokens | maps
    width: int = 128  # token width / CNN base
    layers: int = 3  # transformer layers
    heads: int = 4
    dropout: float = 0.1
    use3d: bool = True  # tokens also carry root-relative 3D keypoints when given
    map_resolution: int = 32
    map_sigma: float = 1.0


class TokenEncoder(nn.Module):
    """A token per keypoint: (x, y, confidence) normalised to the box, optionally (X, Y, Z,
    confidence) of its 3D keypoint, plus an embedding of which keypoint it is and of the
    convention; a class token; a pre-norm transformer. Features: ``pooled`` = the class
    token and the confidence-weighted mean of the keypoint tokens, (B, 2 * width);
    ``tokens`` = the class token then one per keypoint, (B, 1 + K, width)."""

    def __init__(self, num_keypoints: int, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = config
        d = config.width
        init_token_embedding(self, num_keypoints, d)
        layer = nn.TransformerEncoderLayer(d, config.heads, 2 * d, config.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out_dim = 2 * d

    def tokens(self, inputs: CropInputs) -> Tensor:
        """(B, K, 7): x, y, conf, X, Y, Z, conf3d (3D part zero when absent or disabled)."""
        return token_features(inputs, self.num_keypoints, self.config.use3d)

    def forward(self, inputs: CropInputs) -> Features:
        x = self.norm(self.transformer(embed_tokens(self, inputs, self.config.use3d)))
        w = inputs.kp[..., 2:3]
        pooled = (x[:, 1:] * w).sum(1) / w.sum(1).clamp(min=1e-6)
        return Features(pooled=torch.cat([x[:, 0], pooled], -1), tokens=x)


def init_token_embedding(m: nn.Module, num_keypoints: int, d: int) -> None:
    """The keypoint-token embedding on module ``m`` (SPIN's token encoder, MAED's
    spatio-temporal encoder; same names, so weights move between them): ``inp`` (7 -> d),
    ``keypoint_embed``, ``convention_embed``, ``cls``."""
    m.num_keypoints = num_keypoints
    m.inp = nn.Linear(7, d)
    m.keypoint_embed = nn.Parameter(torch.randn(num_keypoints, d) * 0.02)
    m.convention_embed = nn.Embedding(len(TOKEN_CONVENTIONS), d)
    nn.init.normal_(m.convention_embed.weight, std=0.02)
    m.cls = nn.Parameter(torch.zeros(1, 1, d))


def token_features(inputs: CropInputs, num_keypoints: int, use3d: bool) -> Tensor:
    """(B, K, 7): x, y, conf, X, Y, Z, conf3d (3D part zero when absent or not used)."""
    kp = inputs.kp
    B, Kn = kp.shape[:2]
    if Kn != num_keypoints:
        raise ValueError(f"token encoder: expected {num_keypoints} keypoints, got {Kn}")
    k3 = inputs.kp3d if (inputs.kp3d is not None and use3d) else kp.new_zeros(B, Kn, 4)
    return torch.cat([kp, k3], -1)


def embed_tokens(m: nn.Module, inputs: CropInputs, use3d: bool) -> Tensor:
    """(B, 1 + K, d): the class token, then the embedded keypoint tokens (``init_token_embedding``)."""
    x = m.inp(token_features(inputs, m.num_keypoints, use3d)) + m.keypoint_embed + m.convention_embed.weight[0]
    return torch.cat([m.cls.expand(x.shape[0], -1, -1), x], 1)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True))


class MapEncoder(nn.Module):
    """Evidence maps (see ``hmrkit.models.inputs.evidence_maps``) at 32 x 32 through a
    4-stage CNN (32 -> 4 px). Features: ``volume`` = the last stage, (B, 2 * width, 4, 4),
    aligned with the crop; ``pooled`` = it pooled to 2 x 2 and projected, (B, 4 * width)."""

    def __init__(self, edges: list[tuple[int, int]], num_keypoints: int, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = config
        self.edges = list(edges)
        c = config.width // 4  # 32 for width 128
        cin = num_keypoints + len(self.edges) + 2
        self.cnn = nn.Sequential(
            _block(cin, c, 1), _block(c, 2 * c, 2), _block(2 * c, 4 * c, 2), _block(4 * c, 8 * c, 2),
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.proj = nn.Sequential(nn.Linear(32 * c, 4 * config.width), nn.ReLU(inplace=True))
        self.out_dim = 4 * config.width

    def maps(self, inputs: CropInputs, mask: Tensor | None = None) -> Tensor:
        return evidence_maps(inputs, self.edges, self.config.map_resolution, self.config.map_sigma, mask)

    def forward(self, inputs: CropInputs, mask: Tensor | None = None) -> Features:
        volume = self.cnn(self.maps(inputs, mask))
        return Features(pooled=self.proj(self.pool(volume)), volume=volume)


def build_encoder(config: EncoderConfig) -> nn.Module:
    from hmrkit import conventions as C

    conv = C.get(INPUT_CONVENTION)
    if config.kind == "tokens":
        return TokenEncoder(len(conv.names), config)
    if config.kind == "maps":
        return MapEncoder(list(conv.edges), len(conv.names), config)
    raise ValueError(f"unknown encoder {config.kind!r}; choose from ['tokens', 'maps']")
