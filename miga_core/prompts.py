"""Multi-prompt schedules (paper App. A.3, Eq. A3; [D6]).

A schedule maps an absolute latent index to convex weights over the P encoded
prompts. A window takes the prompt of its first *updated* latent (Eq. A3:
``l + n_deq``). Schedules are built from equal segments (the paper) or from
keyframes in pixel frames given as JSON (parsed with :mod:`json`, never ``eval``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .errors import PromptScheduleError, bad_value
from .frames import LatentRule, pixel_to_latent

__all__ = ["PromptSchedule"]

class _JsonObject(list):
    """The ``(key, value)`` pairs of a JSON object, in file order (tells objects from arrays)."""


@dataclass(frozen=True)
class PromptSchedule:
    """Which prompt conditions each latent [D6].

    Attributes:
        starts: latent index where each segment starts; ``starts[0] == 0``, strictly increasing.
        prompt_indices: prompt of each segment (indices into the host's P encoded prompts).
        num_prompts: P.
        texts: the prompt texts, when the schedule was built from text (index = prompt index).
        blend_latents: latents over which two neighbouring prompts are blended linearly at
            each boundary (0 = hard switch at the scheduled latent).
        frames: the pixel frame of each segment start, when built from keyframes (for messages).
        latent_rule: the pixel -> latent rule those frames were converted with (None otherwise).
    """

    starts: tuple[int, ...] = (0,)
    prompt_indices: tuple[int, ...] = (0,)
    num_prompts: int = 1
    texts: tuple[str, ...] = ()
    blend_latents: int = 0
    frames: tuple[int, ...] = ()
    latent_rule: LatentRule | None = None

    def __post_init__(self) -> None:
        fix = "give one prompt index per segment, segment starts from 0 strictly increasing"
        if isinstance(self.num_prompts, bool) or not isinstance(self.num_prompts, int) or self.num_prompts < 1:
            raise PromptScheduleError(bad_value("num_prompts", self.num_prompts, "an integer >= 1", "pass the number of encoded prompts"))
        if len(self.starts) != len(self.prompt_indices) or not self.starts:
            raise PromptScheduleError(bad_value("prompt_indices", self.prompt_indices, f"{len(self.starts)} indices, one per segment start", fix))
        if self.starts[0] != 0 or any(b <= a for a, b in zip(self.starts, self.starts[1:])):
            raise PromptScheduleError(bad_value("starts", self.starts, "strictly increasing latent indices starting at 0", fix))
        for p in self.prompt_indices:
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < self.num_prompts:
                raise PromptScheduleError(
                    bad_value("prompt index", p, f"0..{self.num_prompts - 1} (num_prompts={self.num_prompts})",
                              "reference an existing prompt, or add the missing prompt")
                )
        shortest = min((b - a for a, b in zip(self.starts, self.starts[1:])), default=None)
        if isinstance(self.blend_latents, bool) or not isinstance(self.blend_latents, int) or self.blend_latents < 0 or (
            shortest is not None and self.blend_latents > shortest
        ):
            raise PromptScheduleError(
                bad_value("blend_latents", self.blend_latents, f"0..{shortest if shortest is not None else 'any'} (the shortest segment)",
                          "use 0 for a hard switch or a blend no longer than a segment")
            )

    @classmethod
    def single(cls) -> "PromptSchedule":
        """One prompt for the whole video."""
        return cls()

    @classmethod
    def equal_segments(cls, num_prompts: int, latents_per_prompt: int, *, blend_latents: int = 0) -> "PromptSchedule":
        """The paper's schedule: prompt i conditions latents ``[i*N_prom, (i+1)*N_prom)`` (Eq. A3).

        Latents after the last segment keep the last prompt.
        """
        if isinstance(latents_per_prompt, bool) or not isinstance(latents_per_prompt, int) or latents_per_prompt < 1:
            raise PromptScheduleError(bad_value("latents_per_prompt", latents_per_prompt, "an integer >= 1", "use num_frames // num_prompts"))
        if isinstance(num_prompts, bool) or not isinstance(num_prompts, int) or num_prompts < 1:
            raise PromptScheduleError(bad_value("num_prompts", num_prompts, "an integer >= 1", "pass the number of prompts"))
        return cls(tuple(i * latents_per_prompt for i in range(num_prompts)), tuple(range(num_prompts)), num_prompts,
                   blend_latents=blend_latents)

    @classmethod
    def from_keyframes(
        cls,
        keyframes: str | Mapping[str, str | int],
        *,
        latent_rule: LatentRule,
        num_prompts: int | None = None,
        blend_latents: int = 0,
    ) -> "PromptSchedule":
        """Parse keyframes in pixel frames, e.g. ``'{"0": "a red ball", "120": "a blue cube"}'``.

        Values are prompt texts (equal texts share one prompt index, in order of first use) or
        integer prompt indices (then ``num_prompts`` is required). Keys are pixel frames, in
        strictly increasing order, the first ``"0"``; they become latents with
        :func:`pixel_to_latent`.

        Raises:
            PromptScheduleError: invalid JSON, not an object, a key that is not a non-negative
                integer, keys out of order or mapping to the same latent, a missing "0", an empty
                text, mixed value types, or an index outside ``0..num_prompts-1``.
            InvalidConfigError: an unknown ``latent_rule`` (:func:`~miga_core.frames.pixel_to_latent`).
        """
        fix = 'write a JSON object of pixel frame -> prompt, e.g. {"0": "a red ball", "120": "a blue cube"}'
        if isinstance(keyframes, str):
            try:
                pairs = json.loads(keyframes, object_pairs_hook=_JsonObject)
            except json.JSONDecodeError as exc:
                raise PromptScheduleError(bad_value("keyframes", keyframes, "a JSON object", fix,
                                                    problem=f"is not valid JSON ({exc.msg} at char {exc.pos})")) from exc
            if not isinstance(pairs, _JsonObject):
                raise PromptScheduleError(bad_value("keyframes", keyframes, "a JSON object", fix, problem="is not a JSON object"))
        elif isinstance(keyframes, Mapping):
            pairs = list(keyframes.items())
        else:
            raise PromptScheduleError(bad_value("keyframes", keyframes, "a JSON string or a mapping", fix))
        if not pairs:
            raise PromptScheduleError(bad_value("keyframes", keyframes, "at least one keyframe", fix))
        frames: list[int] = []
        for key, _ in pairs:
            if not (isinstance(key, str) and key.strip().isascii() and key.strip().isdigit()):
                raise PromptScheduleError(bad_value("keyframe", key, "a non-negative integer pixel frame as a JSON key", fix))
            frames.append(int(key))
        if frames[0] != 0:
            raise PromptScheduleError(bad_value("first keyframe", frames[0], '0 (the schedule must say what starts the video)', 'add a "0" keyframe'))
        for a, b in zip(frames, frames[1:]):
            if b <= a:
                raise PromptScheduleError(bad_value("keyframe", b, f"> the previous keyframe {a} (strictly increasing)", "list keyframes in increasing order"))
        latents = [pixel_to_latent(f, latent_rule) for f in frames]  # InvalidConfigError for an unknown rule
        for (fa, la), (fb, lb) in zip(zip(frames, latents), zip(frames[1:], latents[1:])):
            if lb <= la:
                raise PromptScheduleError(
                    bad_value("keyframe", fb, f"a later latent frame than keyframe {fa} (both map to latent {la} with rule {latent_rule!r})",
                              "space keyframes at least one latent apart (4 pixel frames for Wan2.1)")
                )
        values = [v for _, v in pairs]
        if all(isinstance(v, str) for v in values):
            texts: list[str] = []
            indices = []
            for f, v in zip(frames, values):
                if not v.strip():
                    raise PromptScheduleError(bad_value(f"keyframes[{f}]", v, "a non-empty prompt text", "write the prompt"))
                if v not in texts:
                    texts.append(v)
                indices.append(texts.index(v))
            return cls(tuple(latents), tuple(indices), len(texts), tuple(texts), blend_latents, tuple(frames), latent_rule)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            if num_prompts is None:
                raise PromptScheduleError(bad_value("num_prompts", None, "the number of prompts when keyframes give indices", "pass num_prompts"))
            return cls(tuple(latents), tuple(values), num_prompts, (), blend_latents, tuple(frames), latent_rule)
        raise PromptScheduleError(bad_value("keyframes", keyframes, "values that are all prompt texts or all prompt indices", fix))

    def segment_of(self, index: int) -> int:
        """Segment holding latent ``index`` (latents before 0 belong to the first)."""
        seg = 0
        for j, start in enumerate(self.starts):
            if index >= start:
                seg = j
        return seg

    def weights(self, index: int) -> torch.Tensor:
        """Convex weights ``[P]`` over the prompts for latent ``index`` [D6].

        One-hot on the segment's prompt; with ``blend_latents = w > 0`` the w latents starting at
        ``start - w // 2`` of each boundary ramp linearly, ``(j + 1) / (w + 1)`` toward the next prompt.
        """
        w = torch.zeros(self.num_prompts, dtype=torch.float32)
        seg = self.segment_of(index)
        w[self.prompt_indices[seg]] = 1.0
        bw = self.blend_latents
        if bw:
            for j, start in enumerate(self.starts[1:], start=1):
                first = start - bw // 2
                if first <= index < first + bw:
                    t = (index - first + 1) / (bw + 1)
                    w.zero_()
                    w[self.prompt_indices[j - 1]] += 1.0 - t
                    w[self.prompt_indices[j]] += t
        return w
