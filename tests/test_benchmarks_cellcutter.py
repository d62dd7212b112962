"""benchmarks/cellcutter.py's measure of when training has settled (speed is never asserted
here): a loss that pauses, or climbs back and falls again, is not yet stable."""

import numpy as np
from benchmark_modules import load_benchmark


def test_stable_epoch_waits_until_the_loss_stays_near_its_end():
    stable_epoch = load_benchmark("cellcutter").stable_epoch
    falling = list(np.linspace(100.0, -700.0, 40)) + [-700.0] * 40
    # The fall ends at epoch 40; the 10-epoch mean comes within 2 % of -700 soon after.
    assert 40 < stable_epoch(falling) <= 50
    # A plateau at -400, a climb back to -100 (a collapse), then the real fall: the plateau
    # is not where the loss settles.
    paused = [-400.0] * 30 + [-100.0] * 5 + list(np.linspace(-100.0, -800.0, 30)) + [-800.0] * 30
    assert 65 < stable_epoch(paused) <= 75
    assert stable_epoch([-1.0] * 5) is None
