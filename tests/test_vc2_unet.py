"""Our VideoCrafter2 UNet (nodes/vc2_unet.py) against outputs of the reference LVDM UNet.

The fixtures were recorded outside the project (the reference code is not in the repository):
``tests/fixtures/vc2_unet/tiny_reference.safetensors`` holds inputs and the reference UNet's eps for a tiny
config of the same architecture (``TINY`` below; weights from :func:`nonzero_weights`, so every tensor is
random and nonzero), in fp32 and fp64; ``vc2_t2v_512_v2_keys.json`` holds the names and shapes of the
reference full-size UNet (``configs/inference_t2v_512_v2.0.yaml``), which are those of the released
checkpoint's ``model.diffusion_model.*`` tensors.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import sys
import types
import zlib

import pytest
import torch
from safetensors import safe_open

import miga_core
import miga_core.errors

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "vc2_unet"


def _load_unet_module():
    """Import nodes/vc2_unet.py without nodes/__init__.py (which needs ComfyUI), sharing our miga_core."""
    pack = "_miga_pack"
    if pack not in sys.modules:
        for name, path in ((pack, ROOT), (f"{pack}.nodes", ROOT / "nodes")):
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
        sys.modules[f"{pack}.miga_core"] = miga_core
        sys.modules[f"{pack}.miga_core.errors"] = miga_core.errors
    return importlib.import_module(f"{pack}.nodes.vc2_unet")


vc2 = _load_unet_module()
TINY = vc2.VC2UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(2, 1),
                         num_head_channels=16, context_dim=24)
RESIDUAL_OUTPUTS = ("out_layers.3.", "proj_out.", "conv4.3.", "to_out.0.", "ff.net.2.")


def hashed_uniform(key: str, n: int) -> torch.Tensor:
    """``n`` values in [-1, 1) (float64) from an integer hash of (key, index): exact on every platform."""
    modulus = 2147483647
    x = (torch.arange(n, dtype=torch.int64) * 40503 + zlib.crc32(key.encode()) % 999983 + 1) % modulus
    for _ in range(3):
        x = x * 48271 % modulus
    return x.double() / modulus * 2 - 1


@torch.no_grad()
def nonzero_weights(model: torch.nn.Module, residual_gain: float = 0.25) -> None:
    """Overwrite every tensor (a fresh UNet outputs exactly 0: its residual outputs are zero-initialised).

    Matrices/kernels: uniform with variance ``1/fan_in``, times ``residual_gain`` for the last layer of each
    residual branch (keeps activations O(10), so fp32 round-off stays far below the tolerance); 1-D weights
    (norms) ``1 + 0.3u``; biases ``0.3u``.
    """
    for name, p in model.state_dict().items():
        u = hashed_uniform(name, p.numel()).reshape(p.shape)
        if p.ndim >= 2:
            v = u * (3.0 / p[0].numel()) ** 0.5
            if any(part in name for part in RESIDUAL_OUTPUTS):
                v = v * residual_gain
        elif name.endswith("weight"):
            v = 1 + 0.3 * u
        else:
            v = 0.3 * u
        p.copy_(v.to(p.dtype))


@pytest.fixture(scope="module")
def recorded():
    with safe_open(str(FIXTURES / "tiny_reference.safetensors"), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.fixture(scope="module")
def tiny_unet():
    net = vc2.VC2UNet(TINY).eval()
    nonzero_weights(net)
    return net


@pytest.fixture(scope="module")
def tiny_unet64(tiny_unet):
    """The same weights in float64: round-off out of the way for comparisons between two of our own runs."""
    net = vc2.VC2UNet(TINY, dtype=torch.float64).eval()
    net.load_state_dict(tiny_unet.state_dict(), strict=True)
    return net


def _cases(data: dict) -> dict[str, tuple]:
    """name -> (timesteps, fps) as our forward takes them; the fixture's per-frame case is ``[B, F]``."""
    return {"scalar": (data["t_scalar"], 8), "frames": (data["t_frames"], 8),
            "fps": (data["t_scalar"], data["fps_tensor"])}


def test_the_tiny_config_matches_the_recorded_architecture_and_weights(recorded, tiny_unet):
    _, meta = recorded
    params = json.loads(meta["unet_params"])
    assert (params["model_channels"], tuple(params["channel_mult"]), params["num_res_blocks"]) == (
        TINY.model_channels, TINY.channel_mult, TINY.num_res_blocks)
    assert (tuple(params["attention_resolutions"]), params["num_head_channels"], params["context_dim"]) == (
        TINY.attention_resolutions, TINY.num_head_channels, TINY.context_dim)
    assert all(v.abs().max() > 0 for v in tiny_unet.state_dict().values())
    total = float(sum(v.double().abs().sum() for v in tiny_unet.state_dict().values()))
    assert total == pytest.approx(float(meta["weight_abs_sum"]), rel=1e-9)  # same names, shapes and values


@pytest.mark.parametrize("case", ["scalar", "frames", "fps"])
def test_tiny_unet_equals_the_reference_unet_in_fp32(recorded, tiny_unet, case):
    data, _ = recorded
    timesteps, fps = _cases(data)[case]
    with torch.no_grad():
        eps = tiny_unet(data["x"], timesteps, data["context"], fps)
    assert eps.shape == data["x"].shape and eps.dtype == torch.float32
    assert data[f"eps_{case}"].abs().max() > 1.0  # the reference output is far from a zero-init 0
    assert (eps - data[f"eps_{case}"]).abs().max() <= 1e-4


@pytest.mark.parametrize("case", ["scalar", "frames", "fps"])
def test_tiny_unet_equals_the_reference_unet_in_fp64(recorded, tiny_unet64, case):
    data, _ = recorded
    timesteps, fps = _cases(data)[case]
    with torch.no_grad():
        eps = tiny_unet64(data["x"].double(), timesteps, data["context"].double(), fps)
    assert (eps - data[f"eps64_{case}"]).abs().max() <= 1e-9


def test_full_size_unet_has_exactly_the_checkpoint_keys_and_shapes():
    record = json.loads((FIXTURES / "vc2_t2v_512_v2_keys.json").read_text())
    net = vc2.VC2UNet(vc2.VC2_T2V_512_V2, device="meta")
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert len(ours) == record["num_tensors"] == 1484
    assert ours == record["shapes"]
    assert sum(v.numel() for v in net.state_dict().values()) == record["num_parameters"]
    assert any(".temopral_conv." in k for k in ours)  # the released checkpoint's spelling
    fake_checkpoint = {k: torch.empty(v, device="meta") for k, v in record["shapes"].items()}
    net.load_state_dict(fake_checkpoint, strict=True, assign=True)


def _inputs(b: int = 2, f: int = 4, seed: int = 3, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    x, context = torch.randn(b, 4, f, 8, 8, generator=g), torch.randn(b, 5, TINY.context_dim, generator=g)
    return x.to(dtype), context.to(dtype)


def test_per_frame_timesteps_all_equal_give_the_scalar_timestep_output(tiny_unet64):
    x, context = _inputs(dtype=torch.float64)
    t = torch.tensor([700.0, 15.0])
    with torch.no_grad():
        scalar = tiny_unet64(x, t, context, 8)
        per_frame = tiny_unet64(x, t[:, None].expand(2, x.shape[2]), context, 8)
    assert (per_frame - scalar).abs().max() <= 1e-10


def test_each_frame_is_embedded_at_its_own_timestep(tiny_unet):
    x, context = _inputs(b=1)
    x = x[:, :, :1].expand(-1, -1, 4, -1, -1).contiguous()  # four identical frames
    base = torch.full((1, 4), 500.0)
    outputs = []
    with torch.no_grad():
        eps_base = tiny_unet(x, base, context, 8)
        for frame in (0, 3):
            moved = base.clone()
            moved[0, frame] = 100.0
            outputs.append(tiny_unet(x, moved, context, 8))
            change = (outputs[-1] - eps_base).abs().amax(dim=(0, 1, 3, 4))  # [F]
            assert change[frame] > 1e-2  # the frame whose timestep moved changes
    # moving the first or the last frame's timestep are different inputs (not pooled over frames)
    assert (outputs[0] - outputs[1]).abs().max() > 1e-2


def test_rows_of_a_batch_are_independent_so_cfg_can_stack_cond_and_uncond(tiny_unet64):
    x, context = _inputs(dtype=torch.float64)
    t = torch.tensor([[900.0, 800.0, 700.0, 600.0], [50.0, 40.0, 30.0, 20.0]])
    fps = torch.tensor([8.0, 16.0])
    with torch.no_grad():
        both = tiny_unet64(x, t, context, fps)
        alone = tiny_unet64(x[1:], t[1:], context[1:], fps[1:])
    assert (both[1:] - alone).abs().max() <= 1e-10


def test_fps_conditions_the_output_as_a_number_or_one_per_row(tiny_unet64):
    x, context = _inputs(dtype=torch.float64)
    t = torch.tensor([500.0, 500.0])
    with torch.no_grad():
        eps = {fps: tiny_unet64(x, t, context, fps) for fps in (8, 24)}
        per_row = tiny_unet64(x, t, context, torch.tensor([8, 24]))
    assert (eps[8] - eps[24]).abs().max() > 1e-3
    assert (per_row[0] - eps[8][0]).abs().max() <= 1e-10 and (per_row[1] - eps[24][1]).abs().max() <= 1e-10


@pytest.mark.parametrize(("change", "argument"), [
    ({"timesteps": torch.zeros(3)}, "timesteps"),
    ({"timesteps": torch.zeros(2, 3)}, "timesteps"),
    ({"context": torch.zeros(2, 5, 7)}, "context"),
    ({"context": torch.zeros(1, 5, 24)}, "context"),
    ({"x": torch.zeros(2, 4, 4, 7, 8)}, "x"),
    ({"x": torch.zeros(2, 3, 4, 8, 8)}, "x"),
    ({"fps": torch.zeros(3)}, "fps"),
    ({"fps": "8"}, "fps"),
])
def test_wrong_inputs_are_refused_with_the_argument_named(tiny_unet, change, argument):
    x, context = _inputs()
    kwargs = {"x": x, "timesteps": torch.zeros(2), "context": context, "fps": 8, **change}
    with pytest.raises(miga_core.MigaError, match=f"^{argument}="):
        tiny_unet(**kwargs)


def test_the_host_can_supply_its_own_layer_classes_and_attention(tiny_unet):
    """ComfyUI builds core models with ``comfy.ops`` classes and ``optimized_attention``: both are honoured."""
    made = []

    def counted(base):
        return type(f"Counted{base.__name__}", (base,), {"__init__": lambda self, *a, **k: (
            made.append(base.__name__), base.__init__(self, *a, **k))[1]})

    ops = types.SimpleNamespace(**{n: counted(getattr(torch.nn, n))
                                   for n in ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm")})
    calls = []

    def attention(q, k, v, heads):
        calls.append(heads)
        return vc2.sdpa_attention(q, k, v, heads)

    net = vc2.VC2UNet(TINY, operations=ops, attention=attention).eval()
    net.load_state_dict(tiny_unet.state_dict(), strict=True)
    layers = [m for m in net.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d,
                                                         torch.nn.Conv3d, torch.nn.GroupNorm, torch.nn.LayerNorm))]
    assert len(made) == len(layers) and all(type(m).__name__.startswith("Counted") for m in layers)
    x, context = _inputs()
    t = torch.tensor([300.0, 30.0])
    with torch.no_grad():
        assert torch.equal(net(x, t, context, 8), tiny_unet(x, t, context, 8))
    assert len(calls) == 2 * sum(isinstance(m, vc2.BasicTransformerBlock) for m in net.modules())
