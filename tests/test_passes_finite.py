"""miga_core.passes.all_finite: the one-reduction finiteness test behind every model call's output check."""

import pytest
import torch

from miga_core.passes import all_finite


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_all_finite_finds_every_bad_element_and_never_calls_finite_values_bad(dtype):
    x = torch.randn(2, 4, 5, 6, 7).to(dtype)
    assert all_finite(x)
    for bad in (float("nan"), float("inf"), -float("inf")):
        for where in ((0, 0, 0, 0, 0), (1, 3, 4, 5, 6), (1, 2, 0, 3, 1)):
            y = x.clone()
            y[where] = bad
            assert not all_finite(y), (bad, where)
    both = x.clone()
    both[0, 0, 0, 0, 0], both[1, 1, 1, 1, 1] = float("inf"), -float("inf")  # their sum is NaN: still not finite
    assert not all_finite(both)
    big = torch.finfo(dtype).max
    huge = torch.full((2, 4, 5, 6, 7), big, dtype=dtype)  # finite values whose sum overflows: the exact test answers
    assert all_finite(huge) and all_finite(-huge)
