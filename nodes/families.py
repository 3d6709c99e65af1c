"""The model families the MIGA nodes can drive, as plain data (no ``comfy`` import: docs/style.md "Layers").

One :class:`ModelFamily` per host model says everything the nodes need that differs between families:
how per-frame timesteps reach the network, the parameterisation, the latent layout (channels and the
``miga_core.frames`` pixel <-> latent rule), the default window length, the ``miga_core`` preset, the
noise schedule and the pixel-size multiple. :mod:`.host` recognises a ComfyUI ``MODEL`` as one of these
(``host.model_family``) and does the comfy-touching parts; the runner and the nodes read the rest here.

Adding a family: one entry in :data:`FAMILIES` plus its recogniser in ``host.model_family``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..miga_core import MigaValueError
from ..miga_core.errors import bad_value

__all__ = ["ModelFamily", "FAMILIES", "DEFAULT_FAMILY", "WAN21", "VC2", "TOY", "family", "supported_families"]


@dataclass(frozen=True)
class ModelFamily:
    """What differs between host model families.

    Attributes:
        name: key in :data:`FAMILIES` (``"wan21"``, ``"vc2"``).
        title: what the user reads in messages.
        timesteps: how the network gets one timestep per latent frame: ``"dit_wrapper"`` (a ComfyUI
            ``DIFFUSION_MODEL`` wrapper swaps the ``[rows]`` timestep for ``[rows, F]``; the network takes
            ``[B, F]``: Wan's ``forward_orig``, our ``VC2UNet``).
        parameterization: ``"flow"`` (ComfyUI ``CONST``: Wan2.1) or ``"eps"`` (VC2), as miga_core's config names it.
        latent_rule: ``miga_core.frames`` rule: ``"wan21"`` (4n+1 pixel frames) or ``"vc2"`` (one latent per frame).
        latent_channels: channels of the family's LATENT (Wan2.1 16, VC2 4).
        window_length: default f0, latent frames per model call (the clip length the model was trained on).
        preset: the ``miga_core.preset`` name of the paper's options for the family (``"toy"``: ``toyworld.sampling.toy_preset``).
        size_multiple: width and height must be multiples of this many pixels (VAE 8 x the network's own
            multiple: Wan's 2x2 patches -> 16; VC2's UNet halves the latent 3 times -> 64).
        schedule: the discrete noise schedule ComfyUI's ``ModelSamplingDiscrete`` builds (VC2: linear betas
            0.00085..0.012 over 1000 steps); empty when ComfyUI's own model class brings it (Wan2.1: flow shift).
        scale_factor: VAE latent scale (VC2 0.18215, SD's KL-f8); None when ComfyUI's own latent format brings it.
        default_fps: frame rate the network is conditioned on by default (VC2 8, as FIFO-Diffusion and MIGA); None
            when the network takes none.
        loader: how to load it in ComfyUI (used in refusals).
        loader_node: the node type whose MODEL is of this family for certain, so validation can tell the family from
            the submitted prompt (None: the default family, Wan2.1, assumed for any other loader).
        pixels_per_latent: pixels per latent along width and height (the VAE's spatial factor: 8 for Wan2.1's and SD's
            VAEs; 1 for the toy model, whose "latents" are its RGB frames).
    """

    name: str
    title: str
    timesteps: Literal["dit_wrapper"]
    parameterization: Literal["flow", "eps"]
    latent_rule: Literal["wan21", "vc2"]
    latent_channels: int
    window_length: int
    preset: str
    size_multiple: int
    schedule: dict = field(default_factory=dict)
    scale_factor: float | None = None
    default_fps: int | None = None
    loader: str = ""
    loader_node: str | None = None
    pixels_per_latent: int = 8


WAN21 = ModelFamily(
    name="wan21", title="Wan2.1 text-to-video (WAN21 / WanModel)", timesteps="dit_wrapper", parameterization="flow",
    latent_rule="wan21", latent_channels=16, window_length=21, preset="wan21", size_multiple=16,
    loader="UNETLoader with wan2.1_t2v_1.3B or wan2.1_t2v_14B")

VC2 = ModelFamily(
    name="vc2", title="VideoCrafter2 text-to-video (LVDM 3D UNet)", timesteps="dit_wrapper", parameterization="eps",
    latent_rule="vc2", latent_channels=4, window_length=16, preset="vc2", size_multiple=64,
    schedule={"beta_schedule": "linear", "linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000},
    scale_factor=0.18215, default_fps=8, loader="MIGA VideoCrafter2 Loader (MigaVC2Loader) with VC2's model.ckpt", loader_node="MigaVC2Loader")

# The shipped ToyDiT (toyworld/model.py, issue 12): flow matching as its training (x_s = (1 - s) x0 + s n, predicts
# n - x0 = ComfyUI's CONST with shift 1), its "latents" are the RGB frames in [-1, 1] (3 channels, 32 x 32, one per video
# frame: the "vc2" rule of miga_core.frames), trained on 16-frame clips; options from toyworld.sampling.toy_preset.
TOY = ModelFamily(
    name="toy", title="MIGA toy model (ToyDiT, 32x32 RGB, no download)", timesteps="dit_wrapper", parameterization="flow",
    latent_rule="vc2", latent_channels=3, window_length=16, preset="toy", size_multiple=32,
    loader="MIGA Toy Model Loader (MigaToyLoader), shipped with the pack", loader_node="MigaToyLoader", pixels_per_latent=1)

#: Every family the nodes accept, by name.
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (WAN21, VC2, TOY)}
#: The family assumed when nothing tells another (any loader but those of ``loader_node``).
DEFAULT_FAMILY = WAN21.name


def supported_families() -> str:
    """``"Wan2.1 text-to-video (...), VideoCrafter2 text-to-video (...)"``: for refusals."""
    return ", ".join(f.title for f in FAMILIES.values())


def family(name: str) -> ModelFamily:
    """The family called ``name``.

    Raises:
        MigaValueError: unknown name; the message lists the supported families.
    """
    if name not in FAMILIES:
        raise MigaValueError(bad_value("model family", name, f"one of {sorted(FAMILIES)} ({supported_families()})", "pick a listed family"))
    return FAMILIES[name]

