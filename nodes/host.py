"""The host adapter: a ComfyUI ``MODEL`` + ``CONDITIONING`` as miga_core's per-frame denoiser.

This is the one module of the pack that imports ``comfy`` (docs/style.md, "Layers"). It turns the
model the user loaded (with its LoRAs, ModelSamplingSD3 shift, block patches and wrappers)
into ``D(x [B,C,F,H,W], sigma [B,F], prompt [B,P]) -> x0`` for the core, following the path
HOST.md records as working on ComfyUI v0.8.0:

- the live guider is called with one representative sigma per window (the window's largest,
  never 0), so everything above the DiT (conditioning, CFG, ``model_function_wrapper``,
  post-CFG functions) sees the ``[B]`` sigma it expects;
- a ``DIFFUSION_MODEL`` wrapper hands the DiT per-frame timesteps ``[rows, F]``
  (``comfy/ldm/wan/model.py`` ``forward`` -> ``_forward``; ``forward_orig`` takes ``[B, F]``);
- per-frame predictions are recovered exactly for flow (``CONST``) and eps models with
  ``x0_f = x - (x - x0_rep) / sigma_rep * sigma_f`` (eps models also get their input
  rescaled per frame inside the wrapper);
- sampling runs inside ``CFGGuider.sample`` on a latent of ONE window, so ComfyUI loads the
  model, builds the conditioning and sizes VRAM for one window whatever the video length;
- progress (windows done / total), the interrupt check and a latent preview run after every
  window.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import comfy.conds
import comfy.model_base
import comfy.model_management
import comfy.model_sampling
import comfy.patcher_extension
import comfy.samplers
import comfy.utils
import folder_paths
import latent_preview
from comfy.cli_args import args as comfy_args
from comfy.ldm.wan.model import WanModel
from comfy.ldm.wan.vae import WanVAE, count_conv3d
from comfy_execution.graph_utils import ExecutionBlocker

from ..miga_core import MigaValueError, PromptSchedule, Replicas, WindowInfo
from ..miga_core.errors import bad_value
from . import vc2_checkpoint
from .families import FAMILIES, ModelFamily, supported_families
from .vc2_unet import VC2UNet, VC2UNetConfig

__all__ = [
    "SCHEDULER_NAMES", "UnsupportedModelError", "ModelRun", "check_model", "model_family", "VC2Model", "load_vc2_checkpoint", "checkpoint_files", "checkpoint_file", "model_parameterization", "ladder",
    "run_on_model", "visible_devices", "parse_devices", "model_replicas", "storage_device", "compute_device", "to_model_space", "to_latent_space", "HostProgress",
    "on_prompt", "executing_node", "send_to_client", "add_get_route", "PROGRESS_EVENT", "REPORT_EVENT",
    "UnsupportedVaeError", "check_vae", "decoded_frames", "decode_chunks", "decode_memory", "DecodeProgress", "save_path", "save_metadata",
    "blocked_output", "fingerprint", "checkpoint_path",
    "toyworld", "ToyModel", "ToyVAE", "load_toy_model", "toy_prompt_conditioning", "toy_prompt_width",
]

log = logging.getLogger("miga")

SCHEDULER_NAMES: list[str] = list(comfy.samplers.SCHEDULER_NAMES)
WRAPPER_KEY = "miga_per_frame_timesteps"


class UnsupportedModelError(MigaValueError):
    """The MODEL cannot run in a queue (no per-frame timesteps, or an unsupported parameterisation)."""


def model_family(model: Any) -> ModelFamily:
    """The family (:mod:`.families`) of a ComfyUI MODEL the queue can drive.

    Accepted: text-to-video Wan2.1-architecture models (``WAN21`` over a plain ``WanModel`` with a
    16-channel patch embedding: Wan2.1-T2V-1.3B/14B); VideoCrafter2 (:class:`VC2Model` over our LVDM UNet,
    from :func:`load_vc2_checkpoint`).

    Raises:
        UnsupportedModelError: not a ModelPatcher; any other family (the message lists the supported ones);
            a Wan variant whose DiT lacks per-frame timesteps (VACE, Camera, HuMo, S2V, Animate, Wan2.2-5B);
            image-to-video Wan.
    """
    base = getattr(model, "model", None)
    if base is None or not hasattr(model, "clone"):
        raise UnsupportedModelError(bad_value("model", type(model).__name__, "a ComfyUI MODEL (a ModelPatcher)",
                                              "connect the MODEL output of UNETLoader, MIGA VideoCrafter2 Loader or a model patch node"))
    dit = getattr(base, "diffusion_model", None)
    name = type(base).__name__
    if isinstance(base, ToyModel):
        if type(dit).__name__ != "ToyComfyNet":
            raise UnsupportedModelError(bad_value("model", f"{name} / {type(dit).__name__}", "the toy model over its ToyDiT",
                                                  "remove the patch that replaced the diffusion model"))
        return FAMILIES["toy"]
    if isinstance(base, VC2Model):
        if not isinstance(dit, VC2UNet):
            raise UnsupportedModelError(bad_value("model", f"{name} / {type(dit).__name__}", "VC2 over its LVDM 3D UNet",
                                                  "remove the patch that replaced the diffusion model"))
        return FAMILIES["vc2"]
    if not isinstance(base, comfy.model_base.WAN21):
        raise UnsupportedModelError(bad_value("model", name, f"a model of a supported family: {supported_families()}",
                                              "load " + "; or ".join(f.loader for f in FAMILIES.values()) + "; other families are not supported yet"))
    if type(base) is not comfy.model_base.WAN21 or type(dit) is not WanModel:
        raise UnsupportedModelError(bad_value("model", f"{name} / {type(dit).__name__}",
                                              "plain Wan2.1 T2V (this variant's DiT does not take per-frame timesteps, "
                                              "which the MIGA queue needs)",
                                              "use a Wan2.1 T2V model; VACE, Camera, HuMo, S2V, Animate and Wan2.2-5B are not supported"))
    in_dim = int(dit.patch_embedding.weight.shape[1])
    if getattr(base, "image_to_video", False) or in_dim != 16:
        raise UnsupportedModelError(bad_value("model", f"image-to-video Wan (patch embedding takes {in_dim} channels)",
                                              "a text-to-video Wan2.1 model (16 channels)",
                                              "use wan2.1_t2v_*; to start from an image, make the first clip with the I2V "
                                              "workflow and pass its LATENT as initial_clip"))
    return FAMILIES["wan21"]


def check_model(model: Any) -> str:
    """Refuse models the queue cannot drive; return the parameterisation (``"flow"`` or ``"eps"``).

    Dispatches through :func:`model_family` (the :mod:`.families` table), then reads the live model sampling
    (a ModelSampling node may have changed it).

    Raises:
        UnsupportedModelError: see :func:`model_family`; a parameterisation other than flow (CONST) or eps.
    """
    model_family(model)
    return model_parameterization(model.get_model_object("model_sampling"))


def model_parameterization(model_sampling: Any) -> str:
    """``"flow"`` for ``CONST`` models, ``"eps"`` for eps models; raise for any other.

    Both predict ``denoised = input - output * sigma``, which makes the per-frame recovery exact.

    Raises:
        UnsupportedModelError: v-prediction, EDM, x0 or any other parameterisation.
    """
    cls = type(model_sampling)
    if cls.calculate_denoised is comfy.model_sampling.CONST.calculate_denoised and cls.calculate_input is comfy.model_sampling.CONST.calculate_input:
        return "flow"
    if cls.calculate_denoised is comfy.model_sampling.EPS.calculate_denoised and cls.calculate_input is comfy.model_sampling.EPS.calculate_input:
        return "eps"
    raise UnsupportedModelError(bad_value("model sampling", cls.__name__, "flow (CONST) or eps",
                                          "remove the ModelSampling node that switched the model to this prediction type"))


def ladder(model: Any, scheduler: str, steps: int) -> torch.Tensor:
    """The sigmas ``[steps + 1]`` of ``scheduler`` for the model (shift included), as KSampler makes them.

    Raises:
        MigaValueError: unknown scheduler or steps < 1.
    """
    if scheduler not in SCHEDULER_NAMES:
        raise MigaValueError(bad_value("scheduler", scheduler, f"one of {SCHEDULER_NAMES}", "pick a listed scheduler"))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise MigaValueError(bad_value("steps", steps, "an integer >= 1", "use the paper's 54 for Wan2.1"))
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()


def to_model_space(model: Any, latent: torch.Tensor) -> torch.Tensor:
    """A LATENT's samples (VAE space) -> the space the model samples in (``process_latent_in``)."""
    return model.model.process_latent_in(latent)


def to_latent_space(model: Any, x: torch.Tensor) -> torch.Tensor:
    """Model space -> VAE space, what VAE Decode takes (``process_latent_out``)."""
    return model.model.process_latent_out(x)


class _PerFrameTimesteps:
    """The ``DIFFUSION_MODEL`` wrapper: gives the DiT one timestep per latent frame.

    Holds per-call state (an object, not a dict: ComfyUI copies dicts of model options).
    Outside a MIGA call (``sigma_frames is None``) it passes everything through unchanged.
    """

    def __init__(self, model_sampling: Any, parameterization: str) -> None:
        self.model_sampling = model_sampling
        self.parameterization = parameterization
        self.sigma_frames: torch.Tensor | None = None  # [b, F] of the call in flight
        self.sigma_rep: torch.Tensor | None = None  # [b]

    def timesteps(self, sigma: torch.Tensor) -> torch.Tensor:
        """``model_sampling.timestep`` for a ``[b, F]`` sigma (it expects a flat tensor)."""
        return self.model_sampling.timestep(sigma.reshape(-1)).reshape(sigma.shape).float()

    def __call__(self, executor: Callable, x: torch.Tensor, timestep: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.sigma_frames is None:
            return executor(x, timestep, *args, **kwargs)
        sigma_f = self.sigma_frames.to(x.device, torch.float32)
        b, frames = sigma_f.shape
        rows = x.shape[0]
        if rows % b or x.shape[2] != frames or timestep.shape != (rows,):
            raise MigaValueError(bad_value("DiT call", f"x {tuple(x.shape)}, timestep {tuple(timestep.shape)}",
                                           f"a batch of k*{b} rows of {frames} frames with one timestep per row",
                                           "remove model patches that change the batch or frame count of Wan's DiT "
                                           "(context windows, frame interpolation) before the MIGA node"))
        sigma_f = sigma_f.repeat(rows // b, 1)  # [rows, F]: cond and uncond chunks share the window's sigmas
        if self.parameterization == "eps":  # input was scaled by c_in(sigma_rep); make it c_in(sigma_f) per frame
            rep = self.sigma_rep.to(x.device, torch.float32).repeat(rows // b)
            ones = torch.ones((), device=x.device)
            c_f = self.model_sampling.calculate_input(sigma_f.reshape(-1), ones).reshape(rows, frames)
            c_rep = self.model_sampling.calculate_input(rep, ones).reshape(rows, 1)
            scale = (c_f / c_rep).to(x.dtype)
            x = x * scale[:, None, :, None, None]
        return executor(x, self.timesteps(sigma_f).to(timestep.dtype), *args, **kwargs)


class _MigaGuider(comfy.samplers.CFGGuider):
    """CFGGuider whose positive conditioning is picked per window from the prompt schedule [D6].

    Conds are registered as ``positive`` (prompt 0), ``miga_prompt_<i>`` (prompt i) and
    ``negative``; ComfyUI processes all of them once per run (``process_conds``).
    """

    positive_key = "positive"

    def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006 (ComfyUI's signature)
        return comfy.samplers.sampling_function(self.inner_model, x, timestep, self.conds.get("negative", None),
                                                self.conds.get(self.positive_key, None), self.cfg, model_options=model_options, seed=seed)

    def select(self, weights: Sequence[float]) -> None:
        """Make the positive conditioning the prompt of ``weights`` ([P] convex), blending if needed [D6]."""
        nonzero = [(i, float(w)) for i, w in enumerate(weights) if w > 0]
        if len(nonzero) == 1:
            self.positive_key = _prompt_key(nonzero[0][0])
            return
        key = "miga_blend_" + "_".join(f"{i}:{w:.6f}" for i, w in nonzero)
        if key not in self.conds:
            self.conds[key] = _blend([self.conds[_prompt_key(i)] for i, _ in nonzero], [w for _, w in nonzero])
        self.positive_key = key


def _conds_to(conds: dict[str, list[dict]], device: torch.device) -> None:
    """Move a guider's processed conditioning (its ``model_conds`` tensors) to ``device``, once per run.

    ComfyUI keeps it in host memory and copies it to the model's device at every model call (``cast_to_device`` in
    ``BaseModel._apply_model``): for Wan2.1 8 MiB of float32 text embedding per prompt, a copy from pageable memory
    that also makes the host wait for the model call in flight, which undoes the executor's pipelining
    (:class:`miga_core.executors.Sequential`). The values are the same; only where they live changes.
    """
    for entries in conds.values():
        for entry in entries:
            entry["model_conds"] = {k: v._copy_with(v.cond.to(device)) if isinstance(getattr(v, "cond", None), torch.Tensor) else v
                                    for k, v in entry.get("model_conds", {}).items()}


def _prompt_key(i: int) -> str:
    return "positive" if i == 0 else f"miga_prompt_{i}"


def _blend(conds: list[list[dict]], weights: list[float]) -> list[dict]:
    """Linear blend of processed conditionings' text embeddings [D6] (same structure required)."""
    first = conds[0]
    if any(len(c) != len(first) for c in conds):
        raise MigaValueError(bad_value("prompt schedule", [len(c) for c in conds], "conditionings with the same number of entries",
                                       "blend prompts made the same way (one CLIPTextEncode each), or set blend to 0"))
    out = []
    for parts in zip(*conds):
        tensors = [p["model_conds"]["c_crossattn"].cond for p in parts]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise MigaValueError(bad_value("prompt embeddings", [tuple(t.shape) for t in tensors], "equal shapes to blend",
                                           "shorten the longer prompt (under 512 tokens) or set blend to 0"))
        entry = dict(parts[0])
        entry["model_conds"] = dict(parts[0]["model_conds"])
        entry["model_conds"]["c_crossattn"] = comfy.conds.CONDCrossAttn(sum(w * t for w, t in zip(weights, tensors)))
        out.append(entry)
    return out


class _Denoiser:
    """miga_core's :class:`~miga_core.Denoiser` over ComfyUI's sampling model (KSamplerX0Inpaint).

    It takes the prompt weights on the host (``prompt_on_host``): it reads them to pick each row's conditioning, and on
    the host that read never waits for the model call in flight.
    """

    prompt_on_host = True

    def __init__(self, model_k: Callable, extra_args: dict, per_frame: _PerFrameTimesteps, guider: _MigaGuider) -> None:
        self.model_k, self.extra_args, self.per_frame, self.guider = model_k, extra_args, per_frame, guider
        # grad / inference mode are per thread: a replica's thread (miga_core.Replicas) runs as the node's thread does
        self.modes = (torch.is_inference_mode_enabled(), torch.is_grad_enabled())

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        inference, grad = self.modes
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return self._call(x, sigma, prompt)

    def _call(self, x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        rows_of: dict[tuple[float, ...], list[int]] = {}
        for r, w in enumerate(prompt.tolist()):  # on the host: no wait for the device
            rows_of.setdefault(tuple(w), []).append(r)
        if len(rows_of) == 1:  # every row the same prompt (always, with one window per call): no indexing, no copy
            return self._predict(x, sigma, next(iter(rows_of)))
        out = torch.empty_like(x)
        pin = x.device.type == "cuda"  # pinned: the index goes up without waiting for the device
        for weights, rows in rows_of.items():
            idx = (torch.as_tensor(rows).pin_memory() if pin else torch.as_tensor(rows)).to(x.device, non_blocking=True)
            out[idx] = self._predict(x[idx], sigma[idx], weights)
        return out

    def _predict(self, xs: torch.Tensor, sigma: torch.Tensor, weights: tuple[float, ...]) -> torch.Tensor:
        """Per-frame x0 of rows ``xs`` ``[b, C, F, H, W]`` at ``sigma`` ``[b, F]``, all with the prompt of ``weights``."""
        sf = sigma.to(xs.device, xs.dtype)
        rep = sf.amax(dim=1)  # [b]: the window's largest sigma (> 0: every window updates a noisy latent)
        self.guider.select(weights)
        self.per_frame.sigma_frames, self.per_frame.sigma_rep = sf, rep
        try:
            x0_rep = self.model_k(xs, rep, **self.extra_args)
        finally:
            self.per_frame.sigma_frames = self.per_frame.sigma_rep = None
        sf5, rep5 = sf[:, None, :, None, None], rep[:, None, None, None, None]
        x0 = xs - (xs - x0_rep) / rep5 * sf5  # exact for flow and eps (denoised = input - output * sigma)
        return torch.where(sf5 == rep5, x0_rep, x0)


def storage_device() -> torch.device:
    """Where MIGA keeps the video's latents: ComfyUI's intermediate device (host memory on GPU setups)."""
    return torch.device(comfy.model_management.intermediate_device())


def compute_device(device: torch.device | str) -> str | None:
    """``MigaConfig.compute_device`` for windows computed on ``device`` (None when it is the storage device)."""
    return None if torch.device(device) == storage_device() else str(device)


@dataclass
class ModelRun:
    """What every MIGA node needs to call the model.

    Attributes:
        model: the ComfyUI MODEL (ModelPatcher).
        positive: CONDITIONING of prompt 0; ``prompts`` more CONDITIONINGs for prompts 1..P-1.
        negative: CONDITIONING for CFG.
        cfg: classifier-free guidance scale (1 disables the negative pass).
        sigmas: the ladder ``[T + 1]`` (CPU).
        seed: noise seed (also given to ComfyUI for seed-dependent patches).
        schedule: which prompt conditions each latent [D6].
        parameterization: ``"flow"`` or ``"eps"`` (from :func:`check_model`).
        family: the :mod:`.families` name (from :func:`model_family`).
        devices: where the windows run (:func:`parse_devices`): empty = the model's own load device, as before issue 15;
            one or more = one replica of the model per device (:func:`model_replicas`), the windows of a pass spread
            over them (``miga_core.Replicas``), bit-identical to one device.
    """

    model: Any
    positive: list
    negative: list
    cfg: float
    sigmas: torch.Tensor
    seed: int
    schedule: PromptSchedule = field(default_factory=PromptSchedule.single)
    prompts: list = field(default_factory=list)
    parameterization: str = "flow"
    family: str = "wan21"
    devices: tuple[str, ...] = ()

    def conds(self) -> dict[str, list]:
        out = {"positive": self.positive, "negative": self.negative}
        for i, c in enumerate(self.prompts, start=1):
            out[_prompt_key(i)] = c
        return out


def run_on_model(run: ModelRun, window_shape: Sequence[int], work: Callable[[Callable, torch.device], Any]) -> Any:
    """Run ``work(denoiser, device)`` inside ComfyUI's sampling of one window-shaped latent.

    ComfyUI loads the model (LoRAs, patches), processes the conditioning and sizes VRAM for
    ``window_shape`` (``[rows, C, f0, H, W]``); ``work`` then drives the whole queue through the
    denoiser. The per-frame wrapper is registered on a clone; ``run.model`` is not changed.

    With ``run.devices`` (issue 15) there is one such sampling session per device, nested, each over its own replica
    (:func:`model_replicas`) and its own guider and conditioning on that device, and ``denoiser`` is a
    ``miga_core.Replicas`` over them: every device holds its weights and one window. Replicas made for this run are
    unloaded when it ends (also on an error or a cancel).

    Returns:
        what ``work`` returns.
    Raises:
        whatever ``work`` raises (e.g. ComfyUI's interrupt), after ComfyUI has cleaned up.
    """
    if not run.devices:
        return _sessions(run, [run.model.clone()], window_shape, lambda denoisers, device: work(denoisers[0], device))
    replicas = model_replicas(run.model, run.devices)
    try:
        return _sessions(run, [r for r, _ in replicas], window_shape,
                         lambda denoisers, device: work(Replicas(denoisers, list(run.devices)), device))
    finally:
        for replica, copied in replicas:
            if copied:
                _unload(replica)


def _sessions(run: ModelRun, patchers: list[Any], window_shape: Sequence[int], work: Callable[[list, torch.device], Any]) -> Any:
    """ComfyUI's sampling of one window on each of ``patchers`` (nested: all loaded at once); ``work(denoisers, device)``
    runs inside the innermost with one :class:`_Denoiser` per patcher (``device``: the first one's)."""
    denoisers: list[_Denoiser] = []
    box: dict[str, Any] = {}

    def enter(k: int) -> None:
        patched = patchers[k]
        per_frame = _PerFrameTimesteps(patched.get_model_object("model_sampling"), run.parameterization)
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY, per_frame)
        if k == 0:
            _warn_about_caches(patched)
        guider = _MigaGuider(patched)
        guider.inner_set_conds(run.conds())
        guider.set_cfg(run.cfg)

        def sampler_function(model_k, noise, sigmas, extra_args=None, callback=None, disable=None):
            _conds_to(guider.conds, noise.device)
            denoisers.append(_Denoiser(model_k, extra_args or {}, per_frame, guider))
            box.setdefault("device", noise.device)
            if k + 1 < len(patchers):
                enter(k + 1)
            else:
                box["result"] = work(list(denoisers), box["device"])
            return noise

        latent = torch.zeros(tuple(window_shape), device=comfy.model_management.intermediate_device())
        comfy.model_management.throw_exception_if_processing_interrupted()
        guider.sample(latent, latent, comfy.samplers.KSAMPLER(sampler_function), run.sigmas, disable_pbar=True, seed=run.seed)

    enter(0)
    return box["result"]


def visible_devices() -> list[str]:
    """The devices torch sees in this process, as :func:`parse_devices` accepts them: ``"cpu"``, then ``"cuda:0"``...
    (and ``xpu:i`` / ``mps`` where torch has them)."""
    out = ["cpu"]
    for kind in ("cuda", "xpu"):
        module = getattr(torch, kind, None)
        try:
            count = module.device_count() if module is not None and module.is_available() else 0
        except Exception:  # noqa: BLE001 (a backend that cannot answer has no device for us)
            count = 0
        out += [f"{kind}:{i}" for i in range(count)]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def parse_devices(text: Any) -> tuple[str, ...]:
    """The ``devices`` input: ``""`` -> ``()`` (the model's own device); ``"cuda:0, cuda:1"`` -> ``("cuda:0", "cuda:1")``.

    Each entry must be a device torch sees here (:func:`visible_devices`), written with its index (``cuda:0``, not
    ``cuda``); a GPU may appear once (two replicas on one GPU only double its memory); ``cpu`` may repeat (replicas on
    threads: the CPU tests). Checked in validation (HTTP 400) and again when the node runs.

    Raises:
        MigaValueError: not a string; an unknown, unavailable, index-less or repeated device (the message names the
            value, the devices torch sees and the fix).
    """
    seen = visible_devices()
    allowed = f"a comma-separated list of devices torch sees here ({', '.join(seen)}), e.g. {','.join(seen[1:3]) or 'cpu'}"
    fix_empty = "or leave devices empty to run on the model's own device"
    if not isinstance(text, str):
        raise MigaValueError(bad_value("devices", text, allowed, f"write the devices as text, {fix_empty}"))
    entries = [e.strip() for e in text.split(",")]
    if entries == [""]:
        return ()
    out: list[str] = []
    for entry in entries:
        try:
            device = torch.device(entry) if entry else None
        except (RuntimeError, ValueError):
            device = None
        name = None if device is None else (str(device) if device.index is not None or device.type in ("cpu", "mps") else None)
        if device is not None and name is None:
            raise MigaValueError(bad_value("devices", text, allowed, f"name the index: {device.type}:0", problem=f"has {entry!r} without an index"))
        if name == "cpu:0":
            name = "cpu"
        if name not in seen:
            raise MigaValueError(bad_value("devices", text, allowed, f"use only the devices listed, {fix_empty}",
                                           problem=f"names {entry!r}, which torch does not see here"))
        if name in out and name != "cpu":
            raise MigaValueError(bad_value("devices", text, allowed + ", each GPU once", f"remove the second {name}",
                                           problem=f"names {name} twice"))
        out.append(name)
    return tuple(out)


def model_replicas(model: Any, devices: Sequence[str]) -> list[tuple[Any, bool]]:
    """One ModelPatcher per device computing what ``model`` computes there: ``(patcher, copied)`` per device.

    The first device equal to ``model.load_device`` gets a plain ``model.clone()`` (shares the weights, loaded as
    today). Every other device gets a clone (same LoRA and weight patches, object patches, wrappers, callbacks and
    model options) over its own deep copy of the model's unpatched weights, with ``load_device`` = that device: ComfyUI
    loads, patches and offloads it like any model (``load_models_gpu`` frees memory on its device only). Its ``parent``
    is None, so ComfyUI's memory manager never takes it for ``model``. Before copying, ``model`` and the clones sharing
    its weights are unloaded (weights unpatched, on the offload device), so the copy is of the original weights and
    lands in host memory, not on the GPU; it moves to its device when its session loads it.

    Memory: each copied replica costs one copy of the weights in host memory until its device has loaded it (then the
    device holds it); :func:`run_on_model` unloads it when the run ends.
    """
    out: list[tuple[Any, bool]] = []
    own = torch.device(model.load_device)
    for name in devices:
        device = torch.device(name)
        if device == own and not any(not copied for _, copied in out):
            out.append((model.clone(), False))
            continue
        _unload(model)
        replica = model.clone()
        replica.parent = None
        config = getattr(model.model, "model_config", None)  # shared, not copied: plain settings, and ComfyUI's config
        replica.model = copy.deepcopy(model.model, {id(config): config} if config is not None else {})  # answers any attribute
        replica.backup, replica.object_patches_backup, replica.hook_backup, replica.pinned = {}, {}, {}, set()
        replica.load_device = device
        out.append((replica, True))
    return out


def _unload(model: Any) -> None:
    """Unload ``model`` and every ComfyUI-loaded model sharing its weights (``is_clone``), weights unpatched."""
    loaded = comfy.model_management.current_loaded_models
    for i in range(len(loaded) - 1, -1, -1):
        other = loaded[i].model
        if other is not None and (other is model or other.is_clone(model)):
            if loaded[i].model_unload():
                loaded.pop(i)


def _warn_about_caches(model: Any) -> None:
    """Warn about EasyCache/TeaCache-style wrappers (on the ModelPatcher or in its model options)."""
    sources = (getattr(model, "wrappers", {}), model.model_options.get("transformer_options", {}).get("wrappers", {}))
    keys = [k for wrappers in sources for kind in wrappers.values() for k in kind]
    caches = [k for k in keys if "cache" in k.lower()]
    if caches:
        log.warning("MIGA: the model has caching wrappers %s; they assume consecutive calls see the same frames, which the "
                    "queue's windows do not. Results may drift: remove EasyCache/TeaCache-style nodes for MIGA runs.", caches)


PROGRESS_EVENT = "miga.progress"  # one message per window, drawn on the node by web/miga_progress.js
REPORT_EVENT = "miga.report"  # the run's report when a node finishes (web/miga_progress.js shows its summary)


def progress_message(info: WindowInfo, latent_rule: str = "wan21") -> dict:
    """The ``miga.progress`` message of one window: what the node shows (stage, frames, self-reflection, ETA).

    ``frames_done``/``num_frames`` are latents; ``pixel_frames_done``/``num_pixel_frames`` the same in video frames
    (the family's rule, ``miga_core.frames``: Wan2.1 4n+1, VC2 one per latent). ``window`` never goes back and ends at ``total_windows`` (the plan's).
    """
    from ..miga_core.frames import num_pixel_frames

    def pixels(latents: int) -> int:
        return num_pixel_frames(latents, latent_rule) if latents > 0 else 0

    return {"stage": info.stage, "window": info.window, "total_windows": info.total_windows, "frames_done": info.frames_done,
            "num_frames": info.num_frames, "pixel_frames_done": pixels(info.frames_done), "num_pixel_frames": pixels(info.num_frames),
            "model_calls": info.model_calls, "search_windows": info.search_windows,
            "reflection_checks": info.reflection_checks, "reflection_corrections": info.reflection_corrections,
            "eta_seconds": None if info.eta_seconds is None else round(float(info.eta_seconds), 1)}


def send_to_client(event: str, data: dict) -> bool:
    """Send ``event`` with ``data`` (plus ``prompt_id`` and ``node`` of the executing node) to the client that queued
    the prompt; False when there is no PromptServer (in-process tests) or nothing is executing. Never raises: a
    message must not stop a run."""
    try:
        import server

        instance = getattr(server.PromptServer, "instance", None)
        where = executing_node()
        if instance is None or where is None:
            return False
        instance.send_sync(event, {**data, "prompt_id": where[0], "node": where[1]}, instance.client_id)
        return True
    except Exception:  # noqa: BLE001 (a progress message is never worth a failed run)
        log.debug("MIGA: could not send %s", event, exc_info=True)
        return False


def add_get_route(path: str, handler: Callable[[Mapping[str, str]], dict]) -> bool:
    """Serve ``GET path`` with ``handler(query) -> JSON`` (HTTP 400 with ``{"error": message}`` on a MigaError);
    False when there is no PromptServer (a bare import)."""
    import server
    from aiohttp import web

    from ..miga_core import MigaError

    instance = getattr(server.PromptServer, "instance", None)
    if instance is None:
        return False

    async def serve(request):
        try:
            return web.json_response(handler(dict(request.rel_url.query)))
        except (MigaError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    instance.routes.get(path)(serve)
    return True


class HostProgress:
    """ComfyUI's progress bar over the planned windows, the interrupt check and a latent preview, per window.

    Called by the core after every window with a :class:`~miga_core.WindowInfo`; the bar's total is
    the plan's and never changes, self-reflection's search windows do not move it. Raises
    ComfyUI's ``InterruptProcessingException`` when the user cancels.
    """

    def __init__(self, model: Any, total_windows: int, preview: bool = True) -> None:
        self.pbar = comfy.utils.ProgressBar(max(1, total_windows))
        self.previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format) if preview else None
        self.last_log = -1
        self.latent_rule = model_family(model).latent_rule

    def __call__(self, info: WindowInfo) -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()
        image = None
        if self.previewer is not None and info.denoised.numel():
            newest = min(range(len(info.levels)), key=info.levels.__getitem__) if info.levels else 0
            try:
                image = self.previewer.decode_latent_to_preview_image("JPEG", info.denoised[:1, :, newest:newest + 1])
            except Exception:  # a preview must never stop a run
                log.debug("MIGA: preview failed", exc_info=True)
        self.pbar.update_absolute(info.window, info.total_windows, image)  # search windows keep the value: it never goes back
        send_to_client(PROGRESS_EVENT, progress_message(info, self.latent_rule))
        decile = 10 * info.window // max(1, info.total_windows)
        if decile != self.last_log:
            self.last_log = decile
            eta = f", about {info.eta_seconds / 60:.1f} min left" if info.eta_seconds is not None else ""
            log.info("MIGA %s: window %d/%d, %d/%d latent frames out of the queue, %d search windows%s", info.stage, info.window,
                     info.total_windows, info.frames_done, info.num_frames, info.search_windows, eta)


def check_latent(latent: Any, name: str, channels: int = 16) -> torch.Tensor:
    """The ``[B, channels, F, H, W]`` samples of a video LATENT dict (Wan2.1 16 channels, VC2 4).

    Raises:
        MigaValueError: not a LATENT with 5-D samples of ``channels`` channels.
    """
    samples = latent.get("samples") if isinstance(latent, Mapping) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim != 5 or samples.shape[1] != channels:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(latent).__name__
        raise MigaValueError(bad_value(name, shape, f"a video LATENT [B, {channels}, F, H, W] of the model's family",
                                       "connect a LATENT from a Wan sampler (KSampler on EmptyHunyuanLatentVideo) or VAE Encode"))
    if getattr(samples, "is_nested", False) or "noise_mask" in latent:
        raise MigaValueError(bad_value(name, "a LATENT with a noise mask / nested latents", "a plain video LATENT",
                                       "remove Set Latent Noise Mask before the MIGA node"))
    return samples


# --------------------------------------------------------------------------- validation-time context
# ComfyUI v0.8.0 calls a node's ``validate_inputs`` with ``None`` for every LINKED input (execution.py
# ``get_input_data`` without an execution list) and never hands it the prompt. Two public hooks give a
# node what it needs to check values that come from other nodes' widgets before the prompt is queued:
# ``PromptServer.add_on_prompt_handler`` (runs in the POST /prompt request, just before validation) and
# ``comfy_execution.utils.get_executing_context`` (prompt id and node id, set around validate_inputs).


def on_prompt(handler: Callable[[dict], dict]) -> bool:
    """Register ``handler`` as a PromptServer on-prompt handler; False when no server exists (a bare import)."""
    import server

    instance = getattr(server.PromptServer, "instance", None)
    if instance is None:
        return False
    instance.add_on_prompt_handler(handler)
    return True


def executing_node() -> tuple[str, str] | None:
    """``(prompt_id, node_id)`` of the node whose validate_inputs / execute is running, or None."""
    from comfy_execution.utils import get_executing_context

    context = get_executing_context()
    return None if context is None else (str(context.prompt_id), str(context.node_id))


# --------------------------------------------------------------------------- streaming decode (MIGA Save Video)
# ``VAE.decode`` decodes the whole LATENT at once: Wan2.1's ``WanVAE.decode`` (comfy/ldm/wan/vae.py) runs
# its decoder one latent frame at a time with a feature cache (``feat_map``: one slot per CausalConv3d
# of the decoder, holding the last CACHE_T=2 input frames of that conv), and concatenates every decoded
# frame on the device (fp32, 250 latents at 832x480: ~4.5 GiB) before moving the video to host memory.
# :func:`decode_chunks` makes the same per-latent decoder calls with the same cache list, kept across
# chunks, and hands each chunk's frames out as soon as they exist: the frames are those of one full
# ``VAE.decode`` (the host test measures the difference), GPU memory holds one chunk, host memory one
# chunk plus what the caller keeps. Temporal tiles or independent chunks restart the cache: not exact.


class UnsupportedVaeError(MigaValueError):
    """The VAE cannot be decoded in a stream: a video VAE other than Wan2.1's causal one."""


def check_vae(vae: Any, samples: torch.Tensor) -> str:
    """How ``samples`` can be decoded by ``vae`` chunk by chunk: ``"causal"`` (Wan2.1) or ``"framewise"`` (image VAEs).

    ``"framewise"``: an image VAE (``latent_dim == 2``: SD, SDXL, Flux VAE...), latents ``[N, C, H, W]``
    (frames in the batch) or ``[B, C, F, H, W]``.

    Raises:
        UnsupportedVaeError: not a ComfyUI VAE; a video VAE other than Wan2.1's (Wan2.2, Hunyuan, LTX, Cosmos...);
            latents whose channel count is not the VAE's.
    """
    model = getattr(vae, "first_stage_model", None)
    if model is None or not hasattr(vae, "patcher"):
        raise UnsupportedVaeError(bad_value("vae", type(vae).__name__, "a ComfyUI VAE", "connect the VAE output of VAELoader"))
    if not isinstance(samples, torch.Tensor) or samples.ndim not in (4, 5) or getattr(samples, "is_nested", False):
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise UnsupportedVaeError(bad_value("samples", shape, "an image LATENT [N, C, H, W] or a video LATENT [B, C, F, H, W]",
                                            "connect the LATENT of a sampler"))
    channels = getattr(vae, "latent_channels", samples.shape[1])
    if samples.shape[1] != channels:
        raise UnsupportedVaeError(bad_value("samples", f"{samples.shape[1]} latent channels", f"the VAE's {channels}",
                                            "connect the VAE that belongs to the model that sampled the LATENT"))
    if type(model) is WanVAE and samples.ndim == 5:
        return "causal"
    if isinstance(vae, ToyVAE):
        return "framewise"
    if getattr(vae, "latent_dim", None) == 2 and getattr(vae, "output_channels", 3) == 3:
        return "framewise"
    raise UnsupportedVaeError(bad_value("vae", type(model).__name__, "Wan2.1's causal video VAE or an image VAE (SD, SDXL, Flux)",
                                        "load wan_2.1_vae with VAELoader, or save this model's video with core VAE Decode + Save Video"))


def decoded_frames(vae: Any, samples: torch.Tensor) -> int:
    """Pixel frames per video that ``samples`` decode to (Wan2.1: ``4 (F - 1) + 1``; frame-wise: one per latent frame)."""
    kind = check_vae(vae, samples)
    if kind == "causal":
        return int(vae.upscale_ratio[0](samples.shape[2]))
    return samples.shape[0] if samples.ndim == 4 else samples.shape[2]


# ComfyUI's Wan2.1 VAE estimate has two regimes: a decode of <= 4 latents (2200 units per latent pixel) and of more
# (7000), and does not scale with the batch. A chunk of the streaming decode carries the causal cache of all latents
# before it (1.76 GiB at 832x480 in bf16: the cache tensors' size after 3 latents), so it is the second regime
# whatever the chunk size: on the H200 a chunk of 4 latents at 832x480 took 4.0 GiB beside the weights
# (benchmarks/results/wan_long_cuda.json), where the <= 4 estimate says 1.6 GiB and the > 4 one 5.2 GiB. Too low an
# estimate lets ComfyUI keep the diffusion model resident on a card where the decode then runs out of memory; this one
# makes it unload what the decode needs.
CACHED_DECODE_LATENTS = 5  # a latent count in the estimate's "more than 4" regime


def decode_memory(vae: Any, shape: tuple[int, ...] | torch.Size) -> int:
    """Bytes of GPU memory to ask ComfyUI for before a streaming Wan2.1 decode of latents ``shape`` ``[B, C, F, H, W]``:
    ComfyUI's own estimate for a cache-carrying decode (more than 4 latents) of one video, times the batch."""
    b, c, _f, h, w = shape
    return b * int(vae.memory_used_decode((1, c, CACHED_DECODE_LATENTS, h, w), vae.vae_dtype))


def decode_chunks(vae: Any, samples: torch.Tensor, chunk: int) -> Iterator[torch.Tensor]:
    """Decode ``samples`` ``chunk`` latent frames at a time; yield each chunk's frames ``[B, t, H, W, 3]`` (float32, [0, 1]).

    Concatenated over the chunks, the frames are ``VAE.decode(samples)`` (which gives ``[B, T, H, W, 3]`` for
    a video LATENT and ``[N, H, W, 3]`` for an image LATENT, here ``[1, N, H, W, 3]``): Wan2.1's decoder cache
    is carried from chunk to chunk (see above); an image VAE decodes frame batches with ``VAE.decode`` itself.
    The VAE is loaded through ``comfy.model_management.load_models_gpu`` with the memory of one chunk
    (:func:`decode_memory`: ComfyUI unloads other models to make that room), before every chunk (a no-op while it
    stays loaded). Frames are on ComfyUI's intermediate device (host memory).

    Args:
        vae: a ComfyUI VAE; samples: its LATENT's samples (VAE space); chunk: latent frames per chunk (>= 1).
    Raises:
        UnsupportedVaeError: see :func:`check_vae`. MigaValueError: chunk < 1.
    """
    from .video_file import latent_chunks

    kind = check_vae(vae, samples)
    vae.throw_exception_if_invalid()
    if kind == "framewise":
        frames = samples.unsqueeze(0).movedim(1, 2) if samples.ndim == 4 else samples  # [B, C, F, H, W]
        b = frames.shape[0]
        for start, stop in latent_chunks(frames.shape[2], chunk):
            flat = frames[:, :, start:stop].movedim(2, 1).reshape(-1, *frames.shape[1:2], *frames.shape[3:])  # [B*t, C, H, W]
            images = vae.decode(flat)  # [B*t, H, W, 3]: ComfyUI's own batching, memory estimate and tiled fallback
            yield images.reshape(b, stop - start, *images.shape[1:])
        return
    model: WanVAE = vae.first_stage_model
    b, c, f, h, w = samples.shape
    memory = decode_memory(vae, samples.shape)
    cache: list = [None] * count_conv3d(model.decoder)  # the causal cache, as WanVAE.decode builds it
    for start, stop in latent_chunks(f, chunk):
        comfy.model_management.load_models_gpu([vae.patcher], memory_required=memory, force_full_load=vae.disable_offload)
        try:
            with torch.inference_mode():
                z = model.conv2(samples[:, :, start:stop].to(vae.vae_dtype).to(vae.device))  # 1x1x1 conv: per latent frame
                out = torch.cat([model.decoder(z[:, :, i:i + 1], feat_cache=cache, feat_idx=[0]) for i in range(stop - start)], dim=2)
                pixels = vae.process_output(out.to(vae.output_device).float())  # [B, 3, t, H, W] in [0, 1]
        except comfy.model_management.OOM_EXCEPTION as exc:
            need = memory / 2**30
            raise MigaValueError(bad_value("decode_chunk", chunk, f"a chunk that fits in free VRAM (ComfyUI's estimate: "
                                           f"{need:.1f} GiB for {w * 8}x{h * 8}, batch {b}, most of it the decoder's cache, "
                                           "whatever the chunk)", "free VRAM (close other GPU programs, or start ComfyUI "
                                           "with --lowvram), or decode a smaller batch; lowering decode_chunk saves little")) from exc
        yield pixels.movedim(1, -1)
        del z, out, pixels


class DecodeProgress:
    """ComfyUI's progress bar in video frames, a text line with the ETA on the node and a preview every ``preview_every`` s.

    Call with the frames done so far and the newest frame ``[H, W, 3]``; raises ComfyUI's
    ``InterruptProcessingException`` when the user cancels (checked first, so a cancel lands between chunks).
    """

    def __init__(self, total_frames: int, preview_every: float = 5.0) -> None:
        self.total = max(1, total_frames)
        self.pbar = comfy.utils.ProgressBar(self.total)
        self.start = time.monotonic()
        self.preview_every = preview_every
        self.last_preview = -float("inf")
        self.last_log = -1
        self.node = executing_node()

    def __call__(self, frames_done: int, newest: torch.Tensor | None = None) -> float | None:
        """Report ``frames_done``; return the ETA in seconds (None before the first frame)."""
        from .video_file import eta_seconds, to_uint8

        comfy.model_management.throw_exception_if_processing_interrupted()
        now = time.monotonic()
        eta = eta_seconds(now - self.start, frames_done, self.total)
        preview = None
        if newest is not None and now - self.last_preview >= self.preview_every:
            self.last_preview = now
            try:
                from PIL import Image

                preview = ("JPEG", Image.fromarray(to_uint8(newest[None, ..., :3])[0]), comfy_args.preview_size)
            except Exception:  # a preview must never stop a save
                log.debug("MIGA: decode preview failed", exc_info=True)
        self.pbar.update_absolute(frames_done, self.total, preview)
        text = f"{frames_done}/{self.total} frames" + (f", about {eta:.0f} s left" if eta is not None and frames_done < self.total else "")
        self._text(text)
        decile = 10 * frames_done // self.total
        if decile != self.last_log:
            self.last_log = decile
            log.info("MIGA Save Video: %s", text)
        return eta

    def _text(self, text: str) -> None:
        import server

        instance = getattr(server.PromptServer, "instance", None)
        if instance is not None and self.node is not None and hasattr(instance, "send_progress_text"):
            try:
                instance.send_progress_text(text, self.node[1])
            except Exception:  # progress text is cosmetic
                log.debug("MIGA: progress text failed", exc_info=True)


def save_path(filename_prefix: str, width: int, height: int, extension: str, index: int = 0) -> tuple[Path, str, str]:
    """``(full path, file name, subfolder)`` in ComfyUI's output folder, named as core Save Video names its files.

    ``index`` counts on from ComfyUI's next free counter (one file per video of a batch).

    Raises:
        MigaValueError: the prefix points outside the output folder.
    """
    output = folder_paths.get_output_directory()
    try:
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output, width, height)
    except Exception as exc:  # ComfyUI raises a bare Exception for a path outside the output folder
        raise MigaValueError(bad_value("filename_prefix", filename_prefix, "a path inside ComfyUI's output folder",
                                       "remove '..' and leading '/' from the prefix")) from exc
    os.makedirs(folder, exist_ok=True)
    file = f"{filename}_{counter + index:05}_.{extension}"
    return Path(folder) / file, file, subfolder


def save_metadata(prompt: Any, extra_pnginfo: Any) -> dict | None:
    """The workflow metadata core Save Video stores in its files (None with ``--disable-metadata``)."""
    if comfy_args.disable_metadata:
        return None
    metadata = dict(extra_pnginfo or {})
    if prompt is not None:
        metadata["prompt"] = prompt
    return metadata or None


def blocked_output(message: str) -> Any:
    """An output value that stops the nodes connected to it with ``message`` (ComfyUI's ``ExecutionBlocker``)."""
    return ExecutionBlocker(message)


# --- checkpoints (issue 11) -------------------------------------------------------------------------------------------

CHECKPOINT_FOLDER = "miga_checkpoints"  # under ComfyUI's output folder


def _digest(h: Any, value: Any, depth: int = 0) -> None:
    """Feed ``value`` (tensors, lists, dicts, numbers, strings; other objects by type name) into the hash ``h``."""
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"T{tuple(t.shape)}{t.dtype}".encode())
        try:
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        except (RuntimeError, TypeError):  # a tensor subclass that cannot be viewed as bytes: shape and dtype only
            pass
    elif isinstance(value, Mapping) and depth < 8:
        for k in sorted(value, key=str):
            h.update(f"K{k!s}".encode())
            _digest(h, value[k], depth + 1)
    elif isinstance(value, (list, tuple)) and depth < 8:
        h.update(f"L{len(value)}".encode())
        for v in value:
            _digest(h, v, depth + 1)
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(repr(value).encode())
    else:
        h.update(type(value).__name__.encode())


def _hash(value: Any) -> str:
    h = hashlib.sha256()
    _digest(h, value)
    return h.hexdigest()[:32]


def _model_identity(model: Any) -> str:
    """The DiT's class, parameter names and shapes, a sample of its weights (first and last 64k values of the first and last
    two tensors) and the patches (LoRAs) with their strengths: cheap, and different for another checkpoint or LoRA."""
    h = hashlib.sha256()
    params = list(model.model.diffusion_model.state_dict().items())
    h.update(type(model.model.diffusion_model).__name__.encode())
    h.update(repr(getattr(model.model, "fps", None)).encode())  # VC2's fps condition
    for name, t in params:
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
    for name, t in params[:2] + params[-2:]:
        flat = t.detach().reshape(-1)
        _digest(h, [flat[:65536], flat[-65536:]])
    for key in sorted(getattr(model, "patches", {}) or {}):
        h.update(key.encode())
        _digest(h, [(p[0], p[2]) if isinstance(p, tuple) and len(p) > 2 else type(p).__name__ for p in model.patches[key]])
    return h.hexdigest()[:32]


def fingerprint(run: ModelRun, clip: torch.Tensor | None, latent_shape: Sequence[int]) -> dict[str, str]:
    """What a checkpoint must match besides the plan's options and the ladder: the model (weights sample and LoRA
    patches), each prompt's conditioning, the negative one, cfg, the initial clip and the latent size (hashes)."""
    return {"model": _model_identity(run.model), "positive": _hash(run.positive), "negative": _hash(run.negative),
            "prompts": _hash(run.prompts), "cfg": repr(float(run.cfg)), "initial_clip": _hash(clip) if clip is not None else "none",
            "latent_shape": str(tuple(int(d) for d in latent_shape))}


def checkpoint_path(resume_from: str, identity: str) -> Path:
    """The checkpoint file of a run: ``resume_from`` (relative to ComfyUI's output folder, or absolute inside it), else
    ``<output>/miga_checkpoints/miga_<identity>.safetensors``.

    Raises:
        MigaValueError: ``resume_from`` points outside the output folder.
    """
    output = Path(folder_paths.get_output_directory()).resolve()
    if not resume_from.strip():
        return output / CHECKPOINT_FOLDER / f"miga_{identity}.safetensors"
    path = (output / resume_from.strip()).resolve()
    if not path.is_relative_to(output):
        raise MigaValueError(bad_value("resume_from", resume_from, f"a checkpoint file inside ComfyUI's output folder ({output})",
                                       f"use the path the cancelled run logged, e.g. {CHECKPOINT_FOLDER}/miga_....safetensors"))
    return path


# --- VideoCrafter2 as a ComfyUI model (issue 10) ----------------------------------------------------------------------
# VC2 is an eps model on SD's discrete schedule: ComfyUI's ``ModelSamplingDiscrete`` with linear betas
# 0.00085..0.012 over 1000 steps (``comfy/model_sampling.py``; its defaults, stated here from families.VC2) and
# ``EPS`` (``calculate_input`` = x / sqrt(1 + sigma^2), so the UNet sees DDPM-space x_t), SD's latent format
# (scale 0.18215). Our UNet (nodes/vc2_unet.py) sits under a ``BaseModel``, so LoRA patches (keys
# ``diffusion_model.<module>``), model patches and wrappers, memory management and TorchCompileModel treat it
# as a core model. Its forward runs the ``DIFFUSION_MODEL`` wrappers as Wan's does: the per-frame timestep
# wrapper above then hands it ``[rows, F]`` timesteps.

import functools  # noqa: E402  (kept with the VC2 section)

import comfy.latent_formats  # noqa: E402
import comfy.model_patcher  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.supported_models_base  # noqa: E402
from comfy.ldm.modules.attention import optimized_attention  # noqa: E402
from comfy.text_encoders import sd2_clip  # noqa: E402

_VC2 = FAMILIES["vc2"]


class VC2ModelConfig(comfy.supported_models_base.BASE):
    """ComfyUI model config of VideoCrafter2: eps, linear betas 0.00085..0.012 x 1000, SD latent format (0.18215)."""

    unet_config: dict = {}
    unet_extra_config: dict = {}
    sampling_settings = dict(_VC2.schedule)
    latent_format = functools.partial(comfy.latent_formats.SD15, scale_factor=_VC2.scale_factor)
    memory_usage_factor = 2.0
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]

    def __init__(self, unet: VC2UNetConfig) -> None:
        super().__init__({"vc2_config": unet})


def _comfy_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """ComfyUI's attention (xformers / sdpa / split, as configured) on ``[N, L, heads * d]`` tensors."""
    return optimized_attention(q, k, v, heads)


class VC2ComfyUNet(VC2UNet):
    """:class:`~.vc2_unet.VC2UNet` with ComfyUI's call: ``(x, timesteps, context, control, transformer_options, fps)``.

    Same parameters as ``VC2UNet`` (the checkpoint's ``model.diffusion_model.*`` without prefix). ``timesteps`` ``[B]``
    or ``[B, F]``; ``fps`` from the model's conditioning (default: the family's 8). Runs ComfyUI's ``DIFFUSION_MODEL``
    wrappers around the network (where the per-frame timesteps come in).

    Raises:
        UnsupportedModelError: a ControlNet (``control``) is attached: VC2 has none.
    """

    def __init__(self, vc2_config: VC2UNetConfig, dtype: torch.dtype | None = None, device: Any = None, operations: Any = None) -> None:
        super().__init__(vc2_config, operations=operations, attention=_comfy_attention, dtype=dtype, device=device)
        self.dtype = dtype

    def forward(self, x, timesteps, context=None, control=None, transformer_options={}, fps=None, **kwargs):  # noqa: B006 (ComfyUI's signature)
        return comfy.patcher_extension.WrapperExecutor.new_class_executor(
            self._forward, self,
            comfy.patcher_extension.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, transformer_options),
        ).execute(x, timesteps, context, control, transformer_options, fps=fps, **kwargs)

    def _forward(self, x, timesteps, context=None, control=None, transformer_options={}, fps=None, **kwargs):  # noqa: B006
        if control is not None:
            raise UnsupportedModelError(bad_value("control", type(control).__name__, "none (VideoCrafter2 has no ControlNet)",
                                                  "remove the ControlNet from the VC2 conditioning"))
        return VC2UNet.forward(self, x, timesteps, context, _VC2.default_fps if fps is None else fps)


class VC2Model(comfy.model_base.BaseModel):
    """VideoCrafter2 text-to-video as a ComfyUI model (``MODEL``): eps prediction on VC2's schedule.

    ``apply_model(x [B, 4, F, H, W] (model space), sigma [B], c_crossattn [B, 77, 1024])`` -> denoised; CFG batches
    cond and uncond rows in one forward (ComfyUI's ``calc_cond_batch``). ``fps`` (default 8) reaches the UNet as a
    constant condition.
    """

    def __init__(self, model_config: VC2ModelConfig, fps: int = 8, device: Any = None) -> None:
        super().__init__(model_config, comfy.model_base.ModelType.EPS, device=device, unet_model=VC2ComfyUNet)
        self.fps = int(fps)

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)
        out["fps"] = comfy.conds.CONDConstant(self.fps)
        return out


def _vc2_model(unet_sd: dict[str, torch.Tensor], unet: VC2UNetConfig, fps: int) -> Any:
    """A ModelPatcher over :class:`VC2Model`, weights loaded strictly, dtype and devices chosen as UNETLoader does."""
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    config = VC2ModelConfig(unet)
    dtype = comfy.model_management.unet_dtype(model_params=comfy.utils.calculate_parameters(unet_sd),
                                              supported_dtypes=config.supported_inference_dtypes, weight_dtype=comfy.utils.weight_dtype(unet_sd))
    config.set_inference_dtype(dtype, comfy.model_management.unet_manual_cast(dtype, load_device, config.supported_inference_dtypes))
    model = VC2Model(config, fps=fps).to(offload_device)
    model.diffusion_model.load_state_dict(unet_sd, strict=True)  # vc2_checkpoint.split_vc2 checked names and shapes
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def _refuse_missing(part: str, keys: list[str], name: str) -> None:
    if keys:
        shown = ", ".join(sorted(keys)[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise vc2_checkpoint.VC2CheckpointError(bad_value("ckpt_name", name, f"every tensor of VC2's {part}", "use the released model.ckpt",
                                                          problem=f"lacks {part} tensors: {shown}"))


def _vc2_clip(clip_sd: dict[str, torch.Tensor], name: str) -> Any:
    """ComfyUI's SD2 text encoder (OpenCLIP ViT-H/14 text tower, penultimate layer + final LayerNorm, as VC2's
    ``FrozenOpenCLIPEmbedder``) with the sizes of the checkpoint's tower, its weights loaded."""
    sizes = vc2_checkpoint.clip_sizes(clip_sd, name)
    sd = comfy.utils.state_dict_prefix_replace(dict(clip_sd), {"model.": "clip_h."}, filter_keys=True)
    sd = comfy.utils.clip_text_transformers_convert(sd, "clip_h.", "clip_h.transformer.")
    target = comfy.supported_models_base.ClipTarget(sd2_clip.SD2Tokenizer, sd2_clip.SD2ClipModel)
    clip = comfy.sd.CLIP(target, state_dict=sd, parameters=comfy.utils.calculate_parameters(sd),
                         model_options={"clip_h_model_config": sizes})
    wanted = [k for k in clip.cond_stage_model.state_dict() if "text_projection" not in k and "logit_scale" not in k]
    _refuse_missing("text encoder", [k for k in wanted if k not in sd], name)
    return clip


def _vc2_vae(vae_sd: dict[str, torch.Tensor], name: str) -> Any:
    """ComfyUI's ``VAE`` (SD KL autoencoder, ``AutoencoderKL``) with the checkpoint's sizes (VC2: SD's KL-f8)."""
    vae = comfy.sd.VAE(sd=dict(vae_sd), config={"params": vc2_checkpoint.vae_sizes(vae_sd, name)})
    _refuse_missing("VAE", [k for k in vae.first_stage_model.state_dict() if k not in vae_sd], name)
    return vae


def load_vc2_checkpoint(path: str | Path, fps: int = 8) -> tuple[Any, Any, Any]:
    """``(MODEL, CLIP, VAE)`` of VideoCrafter2's ``model.ckpt`` / ``.safetensors`` through ComfyUI's own classes.

    Read with ``torch.load(weights_only=True)`` (never unpickling code) or safetensors; the UNet loads strictly.

    Raises:
        VC2CheckpointError: code-executing pickle, not a VC2 file, missing / mis-shaped tensors (first few named).
    """
    name = Path(path).name
    parts = vc2_checkpoint.split_vc2(vc2_checkpoint.read_state_dict(path), name)
    return _vc2_model(parts.unet, parts.unet_config, fps), _vc2_clip(parts.clip, name), _vc2_vae(parts.vae, name)


def checkpoint_files() -> list[str]:
    """ComfyUI's ``checkpoints`` folder listing (models/checkpoints), for the loader's combo."""
    return folder_paths.get_filename_list("checkpoints")


def checkpoint_file(name: str) -> str:
    """Full path of ``name`` in the checkpoints folder.

    Raises:
        MigaValueError: no such file.
    """
    path = folder_paths.get_full_path("checkpoints", name)
    if path is None:
        raise MigaValueError(bad_value("ckpt_name", name, "a file in models/checkpoints", "put VC2's model.ckpt in models/checkpoints"))
    return path


# --- the toy model as a ComfyUI model (issue 12) ----------------------------------------------------------------------
# The shipped ToyDiT (toyworld/model.py) under a ``BaseModel``: flow matching as trained (ComfyUI ``CONST`` on
# ``ModelSamplingDiscreteFlow`` with shift 1 and multiplier 1, so the timestep the network gets IS the sigma the toy
# was trained on), latents = RGB frames in [-1, 1] (latent format of 3 channels, scale 1, an identity RGB preview).
# The prompt is a multi-hot of the four attributes (one block per attribute, null entry included: 20 values): the
# network's prompt embedding is linear in it, so ComfyUI's CFG and our prompt blending [D6] act on it as on text
# embeddings. The "VAE" is the identity to RGB: decode maps [-1, 1] to [0, 1] images, one per latent frame.
# ``toyworld`` is loaded as the pack's own subpackage (``<pack>.toyworld``), never from ``sys.path``: it then imports the
# pack's ``miga_core`` (toyworld/_core.py), so the process holds one miga_core and the toy's errors are the nodes'
# MigaError classes. (Standalone, ``python -m toyworld.demo``, it is a top-level package using the top-level miga_core.)

import importlib  # noqa: E402  (kept with the toy section)

_TOY = FAMILIES["toy"]
PACK_ROOT = Path(__file__).resolve().parents[1]
PACK_PACKAGE = __package__.rpartition(".")[0]  # the pack's module name in this process ("custom_nodes.comfyui-miga"...)
TOY_WEIGHTS = PACK_ROOT / "toyworld" / "weights" / "toy_dit.safetensors"


def toyworld(module: str) -> Any:
    """``<pack>.toyworld.<module>`` (``world``, ``model``, ``metrics``...): the pack's toyworld, over the pack's miga_core."""
    return importlib.import_module(f"{PACK_PACKAGE}.toyworld.{module}")


class ToyLatentFormat(comfy.latent_formats.LatentFormat):
    """RGB frames in [-1, 1] as latents: 3 channels, video (5-D), scale 1, preview = the frame itself."""

    latent_channels = 3
    latent_dimensions = 3
    scale_factor = 1.0
    latent_rgb_factors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    latent_rgb_factors_bias = [0.0, 0.0, 0.0]


class ToyModelConfig(comfy.supported_models_base.BASE):
    """ComfyUI model config of the ToyDiT: flow (CONST), shift 1, timestep = sigma, fp32."""

    unet_config: dict = {}
    unet_extra_config: dict = {}
    sampling_settings = {"shift": 1.0, "multiplier": 1.0}
    latent_format = ToyLatentFormat
    memory_usage_factor = 1.0
    supported_inference_dtypes = [torch.float32]

    def __init__(self, toy_config: Any) -> None:
        super().__init__({"toy_config": toy_config})


def toy_prompt_width(vocab: Sequence[int]) -> int:
    """Length of the toy prompt's multi-hot: one block of ``n + 1`` (null entry last) per attribute."""
    return sum(int(n) + 1 for n in vocab)


def _toy_net_class() -> type:
    ToyDiT = toyworld("model").ToyDiT

    class ToyComfyNet(ToyDiT):
        """The ToyDiT with ComfyUI's call ``(x [B, 3, F, 32, 32], timesteps [B] or [B, F] (= sigma), context [B, L, 20])``.

        ``context`` is the attribute multi-hot (:func:`toy_prompt_width`); the prompt embedding is its product with
        the attribute tables (= ``ToyDiT.embed_prompt`` for a one-hot, a blend for a blended prompt). Runs ComfyUI's
        ``DIFFUSION_MODEL`` wrappers around the network (where MIGA's per-frame timesteps come in).

        Raises:
            UnsupportedModelError: a ControlNet is attached, or the context is not a toy prompt.
        """

        def __init__(self, toy_config: Any, dtype: torch.dtype | None = None, device: Any = None, operations: Any = None) -> None:
            super().__init__(toy_config)
            self.dtype = dtype

        def forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):  # noqa: B006 (ComfyUI's signature)
            return comfy.patcher_extension.WrapperExecutor.new_class_executor(
                self._forward, self,
                comfy.patcher_extension.get_all_wrappers(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, transformer_options),
            ).execute(x, timesteps, context, control, transformer_options, **kwargs)

        def _forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):  # noqa: B006
            width = toy_prompt_width(self.config.vocab)
            if control is not None:
                raise UnsupportedModelError(bad_value("control", type(control).__name__, "none (the toy model has no ControlNet)",
                                                      "remove the ControlNet from the toy conditioning"))
            if context is None or context.ndim != 3 or context.shape[-1] != width:
                got = None if context is None else tuple(context.shape)
                raise UnsupportedModelError(bad_value("toy conditioning", got, f"[B, tokens, {width}] from MIGA Toy Prompt",
                                                      "encode the prompts with MIGA Toy Prompt (MigaToyPrompt), not CLIPTextEncode"))
            table = torch.cat([t.weight for t in self.attributes]).to(x.dtype)  # [20, D]
            cond = context.to(x.dtype).mean(dim=1) @ table  # [B, D]; tokens are copies (ComfyUI repeats to a common length)
            sigma = timesteps.float()
            if sigma.ndim == 1:
                sigma = sigma[:, None].expand(x.shape[0], x.shape[2])
            return ToyDiT.forward(self, x, sigma, cond)

    return ToyComfyNet


class ToyModel(comfy.model_base.BaseModel):
    """The ToyDiT as a ComfyUI ``MODEL``: ``apply_model(x [B, 3, F, 32, 32], sigma [B], c_crossattn [B, 1, 20])`` -> denoised
    (``x - sigma * v``, CONST). At most ``window_length`` = 16 frames per call (the model's ``pos_time``)."""

    def __init__(self, model_config: ToyModelConfig, device: Any = None) -> None:
        super().__init__(model_config, comfy.model_base.ModelType.FLOW, device=device, unet_model=_toy_net_class())


def load_toy_model(path: str | Path = TOY_WEIGHTS) -> Any:
    """A ModelPatcher over :class:`ToyModel` with the shipped weights (``toyworld.model.load_model``: safetensors, the
    size from its metadata; no pickle), fp32, on ComfyUI's devices as UNETLoader puts a model.

    Raises:
        MigaValueError: bad metadata (``toyworld.model.config_from_metadata``); RuntimeError: tensors that do not fit.
    """
    net = toyworld("model").load_model(str(path))
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    config = ToyModelConfig(net.config)
    config.set_inference_dtype(torch.float32, None)
    model = ToyModel(config).to(offload_device)
    model.diffusion_model.load_state_dict(net.state_dict(), strict=True)
    model.diffusion_model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def toy_prompt_conditioning(attributes: Sequence[int] | None, vocab: Sequence[int]) -> list:
    """CONDITIONING ``[[multi-hot [1, 1, 20], {}]]`` of attribute indices (shape, colour, background, motion); None: the null
    prompt (every attribute's null entry, the unconditional input the toy was trained with: use it as the negative)."""
    indices = list(vocab) if attributes is None else list(attributes)
    hot = torch.zeros(1, 1, toy_prompt_width(vocab))
    offset = 0
    for i, n in zip(indices, vocab):
        hot[0, 0, offset + int(i)] = 1.0
        offset += int(n) + 1
    return [[hot, {}]]


class _ToyDecoder(torch.nn.Module):
    """The toy VAE's model: identity (the latents are the frames); ``process_output`` maps [-1, 1] to [0, 1]."""

    def decode(self, z: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return z

    def encode(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return x


class ToyVAE(comfy.sd.VAE):
    """A ComfyUI ``VAE`` for the toy model: latents ``[B, 3, F, H, W]`` in [-1, 1] are RGB frames; ``decode`` gives images
    ``[B, F, H, W, 3]`` in [0, 1] (core VAE Decode flattens them to ``[B*F, H, W, 3]``), ``encode`` the inverse. One
    latent per frame, 1 pixel per latent: :func:`check_vae` treats it as frame-wise."""

    def __init__(self) -> None:  # comfy.sd.VAE.__init__ builds a network from a state dict; this one has none
        self.memory_used_encode = lambda shape, dtype: 4 * math.prod(shape) * comfy.model_management.dtype_size(dtype)
        self.memory_used_decode = lambda shape, dtype: 4 * math.prod(shape) * comfy.model_management.dtype_size(dtype)
        self.downscale_ratio = self.upscale_ratio = 1
        self.downscale_index_formula = self.upscale_index_formula = None
        self.latent_channels, self.latent_dim, self.output_channels = _TOY.latent_channels, 3, 3
        self.pad_channel_value = None
        self.process_input = lambda image: image * 2.0 - 1.0
        self.process_output = lambda image: torch.clamp((image + 1.0) / 2.0, min=0.0, max=1.0)
        self.working_dtypes = [torch.float32]
        self.disable_offload, self.not_video, self.size = False, False, None
        self.extra_1d_channel, self.crop_input = None, False
        self.first_stage_model = _ToyDecoder().eval()
        self.device = comfy.model_management.vae_device()
        self.vae_dtype = torch.float32
        self.output_device = comfy.model_management.intermediate_device()
        self.patcher = comfy.model_patcher.ModelPatcher(self.first_stage_model, load_device=self.device,
                                                        offload_device=comfy.model_management.vae_offload_device())
        self.model_size()
