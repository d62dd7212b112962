"""The MONAI network plugins: shapes, sizes, determinism, trainability and config checks."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch

from subcell.core.errors import VolumeError
from subcell.plugins.networks import (
    FLEXIBLE_BACKBONES,
    AttentionUNetConfig,
    BasicUNetConfig,
    FlexibleUNetConfig,
    UNetConfig,
    build_attention_unet,
    build_basic_unet,
    build_flexible_unet,
    build_unet,
    check_input_shape,
    parameter_count,
    register_networks,
    required_divisor,
)

# Small variants so a forward pass takes milliseconds on two CPU cores.
TINY = {
    "unet": (
        UNetConfig,
        build_unet,
        {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 1},
    ),
    "basic_unet": (BasicUNetConfig, build_basic_unet, {"features": (4, 4, 8, 8, 16, 4)}),
    "attention_unet": (
        AttentionUNetConfig,
        build_attention_unet,
        {"channels": (4, 8, 16), "strides": (2, 2)},
    ),
    "flexible_unet": (
        FlexibleUNetConfig,
        build_flexible_unet,
        {"backbone": "efficientnet-b0", "decoder_channels": (16, 16, 8, 8, 4)},
    ),
}


def _build(name, seed=0, **overrides):
    config_cls, factory, params = TINY[name]
    config = config_cls(**{**params, **overrides})
    torch.manual_seed(seed)
    return config, factory(config)


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("dims", [2, 3])
def test_forward_shape(name, dims):
    config, net = _build(name, spatial_dims=dims, in_channels=2, out_channels=3)
    divisor = required_divisor(config)
    # Instance norm needs more than one element at the deepest level.
    side = divisor if divisor >= 32 else 2 * divisor
    spatial = (side,) * dims
    check_input_shape(config, spatial)
    net.eval()
    with torch.no_grad():
        out = net(torch.rand(2, 2, *spatial))
    assert tuple(out.shape) == (2, 3, *spatial)
    assert torch.isfinite(out).all()


def test_required_divisors():
    assert required_divisor(UNetConfig()) == 16
    assert required_divisor(UNetConfig(channels=(8, 16, 32), strides=(2, 3))) == 6
    assert required_divisor(AttentionUNetConfig(channels=(8, 16), strides=(2,))) == 2
    assert required_divisor(BasicUNetConfig()) == 16
    assert required_divisor(FlexibleUNetConfig()) == 32


def test_check_input_shape_rejects_bad_sizes():
    with pytest.raises(VolumeError, match="multiples of 16"):
        check_input_shape(UNetConfig(), (48, 40))
    with pytest.raises(VolumeError, match="2 spatial sizes"):
        check_input_shape(UNetConfig(), (16, 32, 32))
    check_input_shape(UNetConfig(spatial_dims=3), (16, 32, 48))


def test_flexible_unet_b3_parameter_count():
    """ANCHORS: FlexibleUNet with an EfficientNet-B3 encoder has about 14 M parameters."""
    torch.manual_seed(0)
    n = parameter_count(build_flexible_unet(FlexibleUNetConfig()))
    assert 13.5e6 < n < 15.0e6, n  # 14 171 953 with MONAI 1.6 (1 in, 1 out, 2D)


def test_tiny_network_parameter_counts():
    counts = {name: parameter_count(_build(name)[1]) for name in TINY}
    # Tiny configs stay tiny; the reported counts make changes in MONAI visible.
    assert 1_000 < counts["unet"] < 20_000, counts
    assert 1_000 < counts["basic_unet"] < 20_000, counts
    assert 1_000 < counts["attention_unet"] < 20_000, counts
    assert 4.5e6 < counts["flexible_unet"] < 6.5e6, counts  # the B0 encoder dominates


@pytest.mark.parametrize("name", list(TINY))
def test_same_seed_same_weights(name):
    _, a = _build(name, seed=7)
    _, b = _build(name, seed=7)
    _, c = _build(name, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def _disc(side=32, radius=8.0):
    yy, xx = np.mgrid[:side, :side]
    return ((yy - 15.5) ** 2 + (xx - 13.0) ** 2 <= radius**2).astype(np.float32)


def test_tiny_unet_overfits_one_target():
    target = torch.from_numpy(_disc())[None, None]
    rng = np.random.default_rng(0)
    image = target + 0.3 * torch.from_numpy(rng.normal(size=target.shape).astype(np.float32))
    torch.manual_seed(0)
    net = build_unet(UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    bce = torch.nn.BCEWithLogitsLoss()
    dice, steps = 0.0, 0
    while dice <= 0.9 and steps < 150:  # ~30 steps with this seed
        optimiser.zero_grad()
        logits = net(image)
        bce(logits, target).backward()
        optimiser.step()
        steps += 1
        pred = (logits.detach() > 0).float()
        dice = float(2 * (pred * target).sum() / (pred.sum() + target.sum()))
    assert dice > 0.9, (dice, steps)


def test_register_networks_names_and_configs():
    seen = {}
    register_networks(lambda name, cls, factory, desc: seen.setdefault(name, (cls, factory)))
    assert set(seen) == {"unet", "basic_unet", "attention_unet", "flexible_unet"}
    for cls, factory in seen.values():
        assert attrs.has(cls) and callable(factory)
        config = cls()
        assert (config.spatial_dims, config.in_channels, config.out_channels) == (2, 1, 1)


def test_backbone_list_matches_monai():
    from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE

    assert set(FLEXIBLE_BACKBONES) == set(FLEXUNET_BACKBONE.register_dict)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: UNetConfig(channels=(8, 16, 32), strides=(2,)), "strides must have"),
        (lambda: AttentionUNetConfig(channels=(8,), strides=()), "strides|channels"),
        (lambda: UNetConfig(spatial_dims=4), "spatial_dims"),
        (lambda: UNetConfig(in_channels=0), "in_channels"),
        (lambda: UNetConfig(kernel_size=4), "kernel_size"),
        (lambda: UNetConfig(dropout=1.0), "dropout"),
        (lambda: BasicUNetConfig(features=(8, 8, 16, 32, 8)), "features must have 6"),
        (lambda: FlexibleUNetConfig(pretrained=True), "never downloads"),
        (lambda: FlexibleUNetConfig(backbone="vit"), "backbone"),
        (lambda: FlexibleUNetConfig(decoder_channels=(8, 8, 8, 8)), "decoder_channels"),
    ],
)
def test_bad_configs_name_the_field(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.gpu
def test_cuda_forward_matches_cpu():
    """The same weights give the same logits on GPU and CPU, within float32 tolerance."""
    torch.manual_seed(0)
    net = build_unet(UNetConfig(channels=(8, 16, 32), strides=(2, 2), num_res_units=1)).eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        on_cpu = net(x)
        on_gpu = net.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-3, atol=1e-4)
