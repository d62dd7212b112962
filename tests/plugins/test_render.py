"""The Fourier renderer: fast (torch, spreading + FFT) path against the float64 reference,
against direct real-space sums of the radial PSF, edges, chunking, reproducibility, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import subcell.plugins.microscopes.render as render_module
from subcell.core.model import Field
from subcell.plugins.microscopes import Airyscan, AiryscanConfig, Epi, EpiConfig
from subcell.plugins.microscopes.epi import halo_otf
from subcell.plugins.microscopes.psf import best_focus_nm, radial_otf, radial_psf
from subcell.plugins.microscopes.render import FourierRenderer

TILE = Field((1, 64, 64), (1300.0, 42.0, 42.0))


def _scene(n, rng, extent_nm=64 * 42.0, outside_nm=1500.0):
    """Random emitters at depths 50–1250 nm, some up to ``outside_nm`` beyond the edges."""
    yx = rng.uniform(-outside_nm, extent_nm + outside_nm, (n, 2))
    return yx, rng.uniform(50.0, 1250.0, n), rng.uniform(10.0, 200.0, n)


def _relative_error(image, reference):
    return float(np.abs(image - reference).max() / reference.max())


@pytest.fixture(scope="module")
def epi():
    return Epi(EpiConfig(device="cpu"))


def test_fast_path_matches_the_float64_reference(epi):
    rng = np.random.default_rng(11)
    renderer = epi.renderer(TILE)
    yx, depth, photons = _scene(3000, rng)
    fast = renderer.render(yx, depth, photons)
    reference = renderer.render(yx, depth, photons, exact=True)
    assert fast.dtype == np.float32 and fast.shape == (1, 64, 64)
    assert _relative_error(fast, reference) < 1e-4  # measured 1.2e-6


def test_fast_path_matches_the_reference_on_a_z_stack_and_a_confocal():
    rng = np.random.default_rng(12)
    stack = Epi(EpiConfig(n_z=3, z_step_nm=250.0, device="cpu")).renderer(
        Field((3, 40, 48), (250, 42, 42))
    )
    confocal = Airyscan(AiryscanConfig(device="cpu")).renderer(Field((1, 40, 48), (1300, 42, 42)))
    for renderer in (stack, confocal):
        yx, depth, photons = _scene(500, rng, extent_nm=40 * 42.0, outside_nm=500.0)
        fast = renderer.render(yx, depth, photons)
        reference = renderer.render(yx, depth, photons, exact=True)
        assert _relative_error(fast, reference) < 1e-4


@pytest.mark.parametrize("depth", [120.0, 650.0, 1180.0])
def test_a_lone_emitter_matches_the_reference(epi, depth):
    # relative to a lone emitter's peak the spreading error is largest: measured ≤ 6e-6
    renderer = epi.renderer(TILE)
    for yx in ([1000.3, 1500.7], [21.0, 2660.2]):
        args = (np.array([yx]), np.array([depth]), np.array([1.0]))
        fast, reference = renderer.render(*args), renderer.render(*args, exact=True)
        assert _relative_error(fast, reference) < 1e-4


def _direct(microscope, yx, depth, photons, field, sub=5):
    """Σ photons × (PSF truncated at its radius + the haze of the light beyond), pixels
    integrated by sub-sampling: the real-space reference of the widefield renderer."""
    optics, radius = microscope.optics, microscope.config.psf_radius_nm
    focus = best_focus_nm(optics, microscope.config.focus_depth_nm)
    p = field.voxel_nm[1]
    c = (np.arange(field.shape[1] * sub) + 0.5) * p / sub
    sigma = radius / 3.0
    image = np.zeros((len(c), len(c)))
    for (y, x), z, n in zip(yx, depth, photons, strict=True):
        r = np.hypot(c[:, None] - y, c[None, :] - x)
        psf = np.where(r <= radius, radial_psf(optics, r, z, focus), 0.0)
        lost = 1.0 - float(radial_otf(optics, 0.0, z, focus, radius))
        psf += lost * np.exp(-(r**2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
        image += n * psf
    k = field.shape[1]
    return image.reshape(k, sub, k, sub).sum(axis=(1, 3)) * (p / sub) ** 2


def test_emitters_off_grid_match_a_direct_real_space_sum(epi):
    field = Field((1, 40, 40), (1300.0, 42.0, 42.0))
    yx = np.array([[500.3, 611.7], [1200.9, 987.2], [850.0, 1400.45]])
    depth = np.array([650.0, 237.5, 1011.3])  # on the 25 nm grid, and between
    photons = np.array([100.0, 50.0, 80.0])
    direct = _direct(epi, yx, depth, photons, field)
    for exact in (True, False):
        image = epi.renderer(field).render(yx, depth, photons, exact=exact)[0]
        # linear interpolation between PSFs 25 nm apart in depth dominates the error
        assert _relative_error(image, direct) < 3e-3


def test_light_never_wraps_around_the_periodic_window(epi):
    # an emitter 1.2 µm beyond the left edge, within the 2 µm PSF radius: the field sees
    # its tail; a field 4 µm larger on every side (another period) sees the same
    yx, depth, photons = np.array([[700.0, -1200.0]]), np.array([650.0]), np.array([1.0])
    small = epi.renderer(Field((1, 32, 32), (1300.0, 42.0, 42.0)))
    big = epi.renderer(Field((1, 224, 224), (1300.0, 42.0, 42.0)))
    for exact in (True, False):
        a = small.render(yx, depth, photons, exact=exact)[0]
        b = big.render(yx + 96 * 42.0, depth, photons, exact=exact)[0, 96:128, 96:128]
        # bright at the left edge only; beyond the 2 µm radius (from pixel 20 on) only the
        # ringing of the truncated, band-limited PSF (~2e-2 of the edge, 1e-5 of a peak)
        assert a[:, 20:].max() < 5e-2 * a[:, 0].max()
        assert np.abs(a - b).max() < 1e-2 * b.max()


def _fresh_renderer(microscope, field=TILE):
    """A renderer of its own (microscopes share cached renderers across instances)."""
    otf = microscope._otf(0, *microscope.plane_depths_nm(field))
    config = microscope.config
    return FourierRenderer(
        otf, field.shape[1:], field.voxel_nm[1:], config.depth_step_nm, config.psf_radius_nm
    )


def test_chunked_spreading_matches_one_pass(epi, monkeypatch):
    rng = np.random.default_rng(13)
    yx, depth, photons = _scene(400, rng)
    whole = _fresh_renderer(epi).render(yx, depth, photons)
    monkeypatch.setattr(render_module, "_MAX_GRID_CELLS", 3 * 160 * 160)
    chunked_renderer = _fresh_renderer(epi)
    assert chunked_renderer._chunk < 20  # many chunks for the ~48 slabs
    chunked = chunked_renderer.render(yx, depth, photons)
    assert _relative_error(chunked, whole) < 1e-6


def test_microscopes_with_equal_configs_share_renderers():
    first = Epi(EpiConfig(device="cpu")).renderer(TILE)
    assert Epi(EpiConfig(device="cpu")).renderer(TILE) is first
    assert Epi(EpiConfig(device="cpu", na=1.3)).renderer(TILE) is not first


def test_same_emitters_give_the_same_bytes_whatever_came_before(epi):
    rng = np.random.default_rng(14)
    a = _scene(300, rng)
    b = _scene(300, rng, outside_nm=0.0)
    b = (b[0], b[1] + 2000.0, b[2])  # deeper: other OTF blocks and bases in between
    used = _fresh_renderer(epi)
    first = used.render(*a)
    used.render(*b)
    assert used.render(*a).tobytes() == first.tobytes()
    assert _fresh_renderer(epi).render(*a).tobytes() == first.tobytes()


def test_empty_and_dark_inputs():
    renderer = Epi(EpiConfig(device="cpu")).renderer(TILE)
    assert not renderer.render(np.zeros((0, 2)), np.zeros(0), np.zeros(0)).any()
    assert not renderer.render(np.array([[100.0, 100.0]]), np.array([650.0]), [0.0]).any()
    assert not renderer.render(np.array([[-2100.0, 100.0]]), np.array([650.0]), [9.0]).any()


def test_halo_otf_is_the_gaussian_haze():
    q = np.linspace(0.0, 2e-3, 50)
    sigma = 2000.0 / 3.0
    assert np.allclose(halo_otf(q, 2000.0), np.exp(-2 * (np.pi * sigma * q) ** 2))


def test_renderer_rejects_cuda_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="cuda"):
        EpiConfig(device="cuda")


@pytest.mark.gpu
def test_cuda_equals_cpu():
    rng = np.random.default_rng(15)
    yx, depth, photons = _scene(20000, rng)
    cpu = Epi(EpiConfig(device="cpu"))
    cuda = Epi(EpiConfig(device="cuda"))
    field = Field((1, 128, 128), (1300.0, 42.0, 42.0))
    yx = yx * 2
    a = cpu.renderer(field).render(yx, depth, photons)
    b = cuda.renderer(field).render(yx, depth, photons)
    assert isinstance(cuda.renderer(field), FourierRenderer)
    assert cuda.renderer(field).device.type == "cuda"
    assert _relative_error(b, a) < 1e-5


def test_emitters_on_the_margin_map_inside_the_fine_grid(epi):
    """Emitters at the very edges of the kept band (and some dropped ones) get fine-grid
    cells in [0, n), and the image with dropped emitters equals that of the kept ones."""
    renderer = _fresh_renderer(epi)
    m, extent = renderer.margin_nm, 64 * 42.0
    edge = np.nextafter(extent + m, 0.0)
    yx = np.array([[-m, -m], [edge, edge], [-m, edge], [100.0, 200.0]])
    for axis, cells in zip((renderer._y, renderer._x), renderer._fine_cells(yx), strict=True):
        assert float(cells.min()) >= 0.0 and float(cells.max()) < axis.n_fine
    photons = np.array([50.0, 50.0, 50.0, 80.0])
    depth = np.full(4, 600.0)
    outside = np.array([[-m - 1.0, 0.0], [0.0, extent + m]])
    full = renderer.render(np.vstack([yx, outside]), np.full(6, 600.0), np.r_[photons, 9.0, 9.0])
    assert np.array_equal(full, renderer.render(yx, depth, photons))
    assert _relative_error(full, renderer.render(yx, depth, photons, exact=True)) < 1e-4
