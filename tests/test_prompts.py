"""Prompt schedules [D6]: pixel -> latent frames, keyframes, equal segments, blends, and the
prompt each window actually gets in a run (paper App. A.3, Eq. A3)."""

from __future__ import annotations

import pytest
import torch

from miga_core import GuidanceOptions, MigaConfig, PromptSchedule, generate, pixel_to_latent

SHAPE = (1, 2, 3, 3)  # (B, C, H, W)


# ---------------------------------------------------------------- pixel frames -> latent frames ----------------------


@pytest.mark.parametrize("frame, latent", [(0, 0), (1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (8, 2), (9, 3), (80, 20), (120, 30)])
def test_wan21_rule_puts_frame_zero_alone_and_four_frames_in_every_later_latent(frame, latent):
    assert pixel_to_latent(frame, "wan21") == latent


def test_wan21_rule_maps_the_last_frame_of_a_4n_plus_1_video_to_its_last_latent():
    for n in range(1, 30):
        assert pixel_to_latent(4 * (n - 1), "wan21") == n - 1  # pixel_frames = 4*(N-1)+1


@pytest.mark.parametrize("frame", [0, 1, 5, 15, 120, 241])
def test_vc2_rule_is_the_identity(frame):
    assert pixel_to_latent(frame, "vc2") == frame


# ---------------------------------------------------------------- keyframes ------------------------------------------


def test_wan21_keyframes_deduplicate_texts_and_start_at_the_latent_of_each_keyframe():
    s = PromptSchedule.from_keyframes('{"0": "a cat", "120": "a dog", "240": "a cat"}', latent_rule="wan21")
    assert s.texts == ("a cat", "a dog")
    assert s.num_prompts == 2
    assert s.starts == (0, 30, 60)
    assert s.prompt_indices == (0, 1, 0)


def test_vc2_keyframes_start_at_the_keyframe_itself():
    s = PromptSchedule.from_keyframes('{"0": "a cat", "120": "a dog", "240": "a cat"}', latent_rule="vc2")
    assert s.texts == ("a cat", "a dog")
    assert s.starts == (0, 120, 240)
    assert s.prompt_indices == (0, 1, 0)


def test_keyframes_given_as_a_mapping_or_as_prompt_indices_give_the_same_schedule():
    from_json = PromptSchedule.from_keyframes('{"0": "a", "20": "b", "36": "a"}', latent_rule="wan21")
    from_map = PromptSchedule.from_keyframes({"0": "a", "20": "b", "36": "a"}, latent_rule="wan21")
    from_idx = PromptSchedule.from_keyframes('{"0": 0, "20": 1, "36": 0}', latent_rule="wan21", num_prompts=2)
    assert from_json == from_map
    assert (from_idx.starts, from_idx.prompt_indices, from_idx.num_prompts) == ((0, 5, 9), (0, 1, 0), 2)
    assert (from_json.starts, from_json.prompt_indices) == (from_idx.starts, from_idx.prompt_indices)


def test_keyframe_weights_switch_exactly_at_the_converted_latent():
    s = PromptSchedule.from_keyframes('{"0": "a", "20": "b", "37": "c"}', latent_rule="wan21")  # latents 0, 5, 10
    got = [int(s.weights(i).argmax()) for i in range(14)]
    assert got == [0] * 5 + [1] * 5 + [2] * 4


# ---------------------------------------------------------------- equal segments and blends -----------------------


@pytest.mark.parametrize("num_prompts, per_prompt", [(1, 3), (3, 4), (4, 1), (2, 5)])
def test_equal_segments_give_latent_i_the_prompt_i_floordiv_n_prom_one_hot(num_prompts, per_prompt):
    s = PromptSchedule.equal_segments(num_prompts, per_prompt)
    for i in range(-2, num_prompts * per_prompt + 6):  # before 0 and past the last segment too
        expected = torch.zeros(num_prompts)
        expected[min(max(i, 0) // per_prompt, num_prompts - 1)] = 1.0
        assert torch.equal(s.weights(i), expected), i


def test_single_schedule_is_prompt_zero_everywhere():
    s = PromptSchedule.single()
    assert all(torch.equal(s.weights(i), torch.ones(1)) for i in range(10))


@pytest.mark.parametrize("blend", [1, 2, 3, 4])
def test_blended_weights_are_convex_and_ramp_monotonically_across_each_boundary(blend):
    s = PromptSchedule.equal_segments(3, 6, blend_latents=blend)  # boundaries at 6 and 12
    ws = torch.stack([s.weights(i) for i in range(-2, 22)])  # [24, 3]
    assert bool((ws >= 0).all())
    assert torch.allclose(ws.sum(-1), torch.ones(len(ws)))
    # across boundary 6 (prompt 0 -> 1) up to where boundary 12's ramp may start, then across boundary 12
    for lo, hi, old, new in [(-2, 12 - blend, 0, 1), (6 + blend, 22, 1, 2)]:
        rows = ws[lo + 2:hi + 2]  # +2: ws starts at latent -2
        assert bool((rows[1:, new] >= rows[:-1, new]).all()), rows
        assert bool((rows[1:, old] <= rows[:-1, old]).all()), rows
        assert torch.allclose(rows[:, old] + rows[:, new], torch.ones(len(rows)))
    # exactly `blend` latents are mixed per boundary, with weights (j + 1) / (blend + 1)
    mixed = [(i, w) for i, w in zip(range(-2, 22), ws) if bool((w < 1).all())]
    assert len(mixed) == 2 * blend
    ramp = torch.tensor([(j + 1) / (blend + 1) for j in range(blend)])
    assert torch.allclose(torch.stack([w[1] for _, w in mixed[:blend]]), ramp)
    assert torch.allclose(torch.stack([w[2] for _, w in mixed[blend:]]), ramp)


def test_blend_between_two_segments_of_the_same_prompt_stays_one_hot():
    s = PromptSchedule.from_keyframes('{"0": "a", "4": "a", "8": "b"}', latent_rule="vc2", blend_latents=2)
    for i in range(4):
        assert torch.equal(s.weights(i), torch.tensor([1.0, 0.0])), i


# ---------------------------------------------------------------- end to end --------------------------------------


VALUES = torch.tensor([10.0, 20.0, 30.0])  # x0 of prompt p


def prompt_valued(x: torch.Tensor, sigma: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
    """A denoiser whose x0 is the constant ``prompt @ VALUES``: the output tells which prompt ran."""
    return (prompt @ VALUES[: prompt.shape[1]]).view(-1, 1, 1, 1, 1).expand_as(x).clone()


def final_values(latents: torch.Tensor) -> list[float]:
    """One value per latent frame of ``[1, C, N, H, W]`` latents that are constant per frame."""
    per_frame = latents[0].transpose(0, 1).flatten(1)  # [N, C*H*W]
    assert torch.allclose(per_frame, per_frame[:, :1].expand_as(per_frame), atol=1e-4)
    return per_frame[:, 0].tolist()


@pytest.mark.parametrize("unified_steps", [0, 3])
@pytest.mark.parametrize("update", ["lookahead", "former"])
def test_a_run_with_stride_one_ends_every_latent_with_its_own_scheduled_prompt(unified_steps, update):
    """Why this is checkable: with ``sampler="euler"`` the last step (sigma -> 0) returns x0_hat exactly,
    so each final latent equals the x0 of the window that made its last step. The denoiser's x0 is the
    constant ``prompt @ VALUES``, so the final value reveals that window's prompt. With ``window_stride=1``
    every region is one latent, so by Eq. A3 the last window of latent i uses the prompt scheduled for
    latent i, in stage 1 (u = 0, the head leaves at level 0) and in stage 2 (u > 0) alike.
    Keyframes 0/20/36 (Wan2.1) -> latents 0/5/9; a switch one latent early or late, or a prompt taken
    from the window's first frame (lookahead context, former right context), changes latents 4, 5, 8 or 9.
    """
    schedule = PromptSchedule.from_keyframes('{"0": "a", "20": "b", "36": "c"}', latent_rule="wan21")
    cfg = MigaConfig(window_length=4, window_stride=1, zigzag_width=2, unified_steps=unified_steps, update=update)
    result = generate(prompt_valued, torch.linspace(1, 0, 13), 12, cfg, latent_shape=SHAPE, prompts=schedule)
    assert final_values(result.latents) == pytest.approx([10.0] * 5 + [20.0] * 4 + [30.0] * 3, abs=1e-4)


@pytest.mark.parametrize("switch, expected", [
    (4, [10.0] * 4 + [20.0] * 4),  # boundary on a region start: switches at 4
    (5, [10.0] * 6 + [20.0] * 2),  # boundary inside region [4, 6): latent 5 keeps the prompt of latent 4
    (6, [10.0] * 6 + [20.0] * 2),
])
def test_a_window_takes_the_prompt_of_its_first_updated_latent(switch, expected):
    """Unified stage only (u = T), N = 8, s = 2, no history: every pass has regions [0,2), [2,4), [4,6),
    [6,8), and the last pass (sigma -> 0, Euler returns x0_hat) sets each latent to its window's x0.
    By Eq. A3 region [4, 6) uses the prompt of latent 4, so a boundary at 5 leaves latent 5 on the old
    prompt; a rule using the region's last latent, or each latent's own prompt, would differ at 5."""
    schedule = PromptSchedule(starts=(0, switch), prompt_indices=(0, 1), num_prompts=2)
    cfg = MigaConfig(window_length=4, zigzag_width=2, unified_steps=12)
    result = generate(prompt_valued, torch.linspace(1, 0, 13), 8, cfg, latent_shape=SHAPE, prompts=schedule)
    assert final_values(result.latents) == pytest.approx(expected, abs=1e-4)


def test_a_blended_boundary_reaches_the_final_latents_with_its_weights():
    """Same stride-1 argument as above: the final value of latent i is ``weights(i) @ VALUES``."""
    schedule = PromptSchedule.equal_segments(2, 6, blend_latents=3)  # latents 5, 6, 7 mixed 1/4, 2/4, 3/4
    cfg = MigaConfig(window_length=4, window_stride=1, zigzag_width=2, unified_steps=2)
    result = generate(prompt_valued, torch.linspace(1, 0, 13), 12, cfg, latent_shape=SHAPE, prompts=schedule)
    expected = [float(schedule.weights(i) @ VALUES[:2]) for i in range(12)]
    assert expected[4:9] == pytest.approx([10.0, 12.5, 15.0, 17.5, 20.0])
    assert final_values(result.latents) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("guidance", [None, GuidanceOptions(num_guidance=1)])
@pytest.mark.parametrize("update", ["lookahead", "former"])
def test_every_window_of_every_stage_uses_the_prompt_of_its_first_updated_latent(guidance, update):
    """The per-window check: the denoiser records the prompt weights of each call, the callback (called
    once per call, in order, with ``window_batch=1``) the absolute indices of the region it updated.
    Every call's prompt must equal ``schedule.weights(first updated index)``; this covers the initial
    clip, the init passes, stage 1 (with guidance latents in the window) and stage 2. The schedule has
    three prompts with boundaries at 5 and 9 (not multiples of the stride 2) so a rule based on any
    other latent of the window (context, guidance, the region's last latent) picks a different prompt."""
    schedule = PromptSchedule(starts=(0, 5, 9), prompt_indices=(0, 1, 2), num_prompts=3)
    prompts: list[torch.Tensor] = []
    infos = []

    def recording(x, sigma, prompt):
        assert prompt.shape == (x.shape[0], 3)
        prompts.append(prompt.clone())
        return x * 0.5

    cfg = MigaConfig(window_length=5, zigzag_width=2, unified_steps=3, update=update)
    result = generate(recording, torch.linspace(1, 0, 13), 12, cfg, latent_shape=SHAPE, prompts=schedule,
                      guidance=guidance, callback=infos.append)
    assert len(prompts) == len(infos) == result.num_windows
    assert {i.stage for i in infos} == {"initial_clip", "init", "zigzag", "unified"}
    used = set()
    for prompt, info in zip(prompts, infos):
        expected = schedule.weights(info.indices[0])
        assert torch.equal(prompt, expected.expand_as(prompt)), (info.stage, info.indices, prompt)
        used.add(int(prompt.argmax()))
    assert used == {0, 1, 2}
