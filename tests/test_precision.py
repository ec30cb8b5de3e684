"""The config's ``precision``: bf16 autocast keeps a search's numbers close to float32's (on the
CPU, where CI runs it), and a bad value is refused naming the field."""
import numpy as np
import pytest

from core.engine.config import ConfigError, make_config
from core.engine.search import Search
from tests.conftest import one_torch_thread


def _six_iterations(precision: str):
    cfg = make_config("tiny", "darts-prime", epochs=1, iters_per_epoch=6, schedule="fixed",
                      period=1, precision=precision, seed=0)
    s = Search(cfg)
    s.setup()
    with one_torch_thread():
        losses = [float(s.iteration(0)["train_loss"]) for _ in range(6)]
    return np.array(losses), s.arch.weights, s.arch_steps


def test_bf16_autocast_keeps_the_search_close_to_float32():
    loss32, w32, steps32 = _six_iterations("fp32")
    loss16, w16, steps16 = _six_iterations("bf16")
    assert steps32 == steps16 == 6
    assert not np.array_equal(loss16, loss32)  # it did run in bfloat16
    np.testing.assert_allclose(loss16, loss32, rtol=0.03)
    for ct in w32:
        np.testing.assert_allclose(w16[ct], w32[ct], atol=0.01)
        assert w16[ct].dtype == np.float32


def test_tf32_is_accepted_and_an_unknown_precision_is_refused():
    assert make_config("tiny", "darts", precision="tf32").precision == "tf32"
    with pytest.raises(ConfigError) as e:
        make_config("tiny", "darts", precision="fp16")
    assert e.value.field == "precision" and "fp32, tf32, bf16" in str(e.value)
