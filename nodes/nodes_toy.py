"""The toy model in ComfyUI (issue 12): the shipped ToyDiT as a MODEL, its "VAE", and its prompt encoder. No download."""

from __future__ import annotations

import re

from comfy_api.latest import io

from ..miga_core import MigaValueError
from ..miga_core.errors import bad_value
from . import host
from .families import TOY
from .widgets import CATEGORY

__all__ = ["MigaToyLoader", "MigaToyPrompt", "vocabulary", "parse_toy_prompt"]

FILLER = ("a", "an", "the", "over", "on", "in", "across", "background", "and", "with")


def vocabulary() -> dict[str, tuple[str, ...]]:
    """The toy world's words by attribute (toyworld.world): shape, colour, background, motion (as a verb or a noun)."""
    world = host.toyworld("world")
    verbs = tuple(world._VERBS[m] for m in world.MOTIONS)
    return {"shape": tuple(world.SHAPES), "colour": tuple(world.COLOURS), "background": tuple(world.BACKGROUNDS),
            "motion": verbs + tuple(world.MOTIONS)}


def parse_toy_prompt(text: str) -> tuple[int, int, int, int] | None:
    """``"a red circle bouncing over stripes"`` -> ``(shape, colour, background, motion)`` indices (toyworld.world order);
    empty text -> None (the null prompt). Words are case-insensitive, in any order; articles and "over", "background"...
    (:data:`FILLER`) are ignored. A non-empty prompt names every attribute exactly once (the toy was trained with all four
    or none: it drops whole prompts only).

    Raises:
        MigaValueError: an unknown word, an attribute named twice or missing; the message lists the vocabulary.
    """
    words = [w for w in re.split(r"[\s,.;:!?]+", text.strip().lower()) if w]
    if not words:
        return None
    vocab = vocabulary()
    listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in vocab.items())
    found: dict[str, str] = {}
    for word in words:
        if word in FILLER:
            continue
        kind = next((k for k, v in vocab.items() if word in v), None)
        if kind is None:
            raise MigaValueError(bad_value("text", text, f"words of the toy world's vocabulary ({listing}; ignored: {', '.join(FILLER)})",
                                           "write e.g. 'a red circle bouncing over stripes'", problem=f"has the unknown word {word!r}"))
        if kind in found and found[kind] != word:
            raise MigaValueError(bad_value("text", text, f"one {kind} ({', '.join(vocab[kind])})", f"keep one of {found[kind]!r}, {word!r}"))
        found[kind] = word
    missing = [k for k in vocab if k not in found]
    if missing:
        raise MigaValueError(bad_value("text", text, f"a shape, a colour, a background and a motion ({listing})",
                                       "name all four, e.g. 'a red circle bouncing over stripes', or leave the text empty for the "
                                       "null prompt (the negative)", problem=f"names no {' and no '.join(missing)}"))
    world = host.toyworld("world")
    motion = found["motion"]
    motion = motion if motion in world.MOTIONS else next(m for m in world.MOTIONS if world._VERBS[m] == motion)
    return (world.SHAPES.index(found["shape"]), world.COLOURS.index(found["colour"]), world.BACKGROUNDS.index(found["background"]),
            world.MOTIONS.index(motion))


class MigaToyLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaToyLoader",
            display_name="MIGA Toy Model Loader (no download)",
            category=CATEGORY,
            description="The toy video model shipped with the pack (ToyDiT, 2.9M parameters, 5.9 MB, runs on a CPU): a coloured shape "
                        "bouncing or orbiting over a background, 32x32 pixels, trained on 16-frame clips. MODEL: flow matching "
                        "(shift 1), latents = the RGB frames (3 channels, one per video frame). VAE: the identity to RGB. Prompts "
                        "come from MIGA Toy Prompt; use the empty prompt as the negative.",
            inputs=[],
            outputs=[io.Model.Output(display_name="MODEL", tooltip="The ToyDiT (flow, shift 1, 16-frame window) for KSampler, context "
                                                                   "windows or the MIGA sampler at 32x32 pixels."),
                     io.Vae.Output(display_name="VAE", tooltip="The identity to RGB: latents in [-1, 1] -> frames in [0, 1], one per latent.")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(host.load_toy_model(), host.ToyVAE())


class MigaToyPrompt(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MigaToyPrompt",
            display_name="MIGA Toy Prompt",
            category=CATEGORY,
            description="The toy model's text encoder: a prompt naming a shape, a colour, a background and a motion of the toy "
                        "world (e.g. 'a red circle bouncing over stripes') -> CONDITIONING. Empty text is the null prompt, the "
                        "negative for CFG. An unknown word is refused before the prompt runs, with the vocabulary.",
            inputs=[io.String.Input("text", multiline=True, default="a red circle bouncing over stripes",
                                    tooltip="Shape (circle, square, triangle), colour (red, green, blue, yellow, magenta), background "
                                            "(black, grey, navy, gradient, stripes, checker) and motion (bouncing, orbiting); empty: the null prompt.")],
            outputs=[io.Conditioning.Output(display_name="CONDITIONING", tooltip="The attributes for the toy MODEL (positive, negative or a prompt schedule).")],
        )

    @classmethod
    def validate_inputs(cls, text) -> bool | str:
        if text is None:
            return True  # linked: checked at execution
        try:
            parse_toy_prompt(text)
        except MigaValueError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, text: str) -> io.NodeOutput:
        world = host.toyworld("world")
        vocab = (len(world.SHAPES), len(world.COLOURS), len(world.BACKGROUNDS), len(world.MOTIONS))  # ToyDiTConfig.vocab's order
        return io.NodeOutput(host.toy_prompt_conditioning(parse_toy_prompt(text), vocab))
