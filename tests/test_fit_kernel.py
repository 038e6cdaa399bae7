"""Learning a kernel from examples: gradient descent must recover a hidden kernel (the oracle)."""
import numpy as np
import pytest

from cnnviz import data, kernels


@pytest.mark.parametrize("name", ["sobel x", "laplacian", "box blur 3×3"])
def test_fit_kernel_recovers_the_hidden_kernel(name):
    image = data.load_image("astronaut", gray=True, max_side=64) / 255.0
    target = kernels.filter_image(image, kernels.preset(name), device="cpu")
    learned, losses = kernels.fit_kernel(image, target, seed=0)
    assert learned.shape == (3, 3)
    assert np.abs(learned - kernels.preset(name)).max() < 0.02
    assert losses[-1] < losses[0] * 1e-3


def test_fit_kernel_is_repeatable_with_a_seed_and_checks_shapes():
    image = np.random.default_rng(0).random((16, 16))
    a, _ = kernels.fit_kernel(image, image, steps=5, seed=3)
    b, _ = kernels.fit_kernel(image, image, steps=5, seed=3)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="same shape"):
        kernels.fit_kernel(image, image[:8], steps=1)
