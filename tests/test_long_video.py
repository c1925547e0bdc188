"""Longer videos than one clip (sgm.inference.chaining): the plan, the per-clip seeds, the overlap tie
inside a real sampler, the crossfade and colour matching, and chained generation on the tiny model."""
import numpy as np
import pytest
import torch
from PIL import Image

from sgm.inference import SamplingOptions
from sgm.inference.chaining import (OverlapTie, channel_stats, clip_seed, crossfade, default_overlap, match_stats,
                                    plan_chain, ramp_in, sample_chain)
from sgm.util import instantiate_from_config
from tests.inference_helpers import random_rgb, tiny_pipeline

EDM_EULER = {"target": "sgm.modules.diffusionmodules.sampling.EulerEDMSampler",
             "params": {"num_steps": 6, "discretization_config": {
                 "target": "sgm.modules.diffusionmodules.discretizer.EDMDiscretization"}}}


@pytest.mark.parametrize("total,clip,overlap", [(12, 4, 1), (25, 14, 3), (75, 25, 6), (30, 25, 24), (10, 4, 2)])
def test_plan_covers_every_frame_once_with_the_overlap(total, clip, overlap):
    clips = plan_chain(total, clip, overlap, video_seed=5)
    assert clips[0].start == 0 and clips[0].overlap == 0 and clips[-1].end == total
    for prev, cur in zip(clips, clips[1:]):
        assert cur.start == prev.end - overlap and cur.overlap == overlap  # shares exactly K frames
        assert cur.end - cur.start <= clip
    assert all(c.end - c.start == clip for c in clips[:-1])  # only the last clip is cut
    assert len(clips) == 1 + -(-(total - clip) // (clip - overlap))


def test_plan_of_one_clip_and_its_errors():
    assert [(c.start, c.end) for c in plan_chain(3, 4, 1, 0)] == [(0, 3)]
    with pytest.raises(ValueError, match="chain_overlap must be in 1..3"):
        plan_chain(12, 4, 4, 0)
    with pytest.raises(ValueError, match="chain_overlap must be in 1..3"):
        plan_chain(12, 4, 0, 0)
    assert default_overlap(4) == 1 and default_overlap(14) == 3 and default_overlap(25) == 6


def test_clip_seeds_are_derived_and_reproducible():
    seeds = [clip_seed(99, i) for i in range(5)]
    assert seeds[0] == 99  # the first clip is the one-clip video
    assert len(set(seeds)) == 5 and seeds == [clip_seed(99, i) for i in range(5)]
    assert clip_seed(100, 1) != seeds[1]
    assert all(0 <= s < 2**63 for s in seeds)
    assert [c.seed for c in plan_chain(12, 4, 1, 99)] == seeds[:4]


def test_options_refuse_bad_chain_settings():
    with pytest.raises(ValueError, match="chain_overlap must be below num_frames=4"):
        SamplingOptions(num_frames=4, total_frames=12, chain_overlap=4).validate()
    with pytest.raises(ValueError, match="total_frames must be >= 1"):
        SamplingOptions(total_frames=0).validate()
    with pytest.raises(ValueError, match="chain_overlap must be >= 1"):
        SamplingOptions(chain_overlap=0).validate()
    SamplingOptions(num_frames=4, total_frames=3, chain_overlap=9).validate()  # one clip: the overlap is unused


def test_tie_pins_the_overlap_frames_in_a_real_sampler():
    """Under the Euler ODE a frame whose prediction is the known latent ends exactly on it; the other
    frames are left to the model, here a denoiser that sees the batch as (B*T, ...) as under guidance."""
    sampler = instantiate_from_config(EDM_EULER)
    T, K = 5, 2
    g = torch.Generator().manual_seed(0)
    known = torch.randn(K, 4, 3, 3, generator=g)
    noise = torch.randn(T, 4, 3, 3, generator=g)

    def denoiser(x, sigma, cond):  # x: (2T, ...) with the unconditional half appended by the guider
        return 0.5 * x / (1 + sigma.view(-1, 1, 1, 1) ** 2) ** 0.5

    def guided(x, sigma, cond):  # two videos in one batch, as a guider would pass them
        return denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), cond)[: len(x)]

    free = sampler(guided, noise, {})
    tied_denoiser = OverlapTie(known, T).wrap(denoiser)
    tied = sampler(lambda x, s, c: tied_denoiser(torch.cat([x, x]), torch.cat([s, s]), c)[: len(x)], noise, {})
    torch.testing.assert_close(tied[:K], known, atol=1e-5, rtol=0)
    assert not torch.allclose(free[:K], known, atol=1e-2)
    assert torch.equal(noise, noise.clone())  # the caller's noise is untouched
    # Released for every step (release_sigma above the largest sigma): the tie changes nothing.
    released = OverlapTie(known, T, release_sigma=1e6).wrap(denoiser)
    torch.testing.assert_close(sampler(lambda x, s, c: released(x, s, c), noise, {}), sampler(denoiser, noise, {}))


def test_crossfade_and_colour_match():
    prev, new = torch.zeros(3, 2, 1, 1), torch.ones(3, 2, 1, 1)
    assert crossfade(prev, new)[:, 0, 0, 0].tolist() == pytest.approx([0.25, 0.5, 0.75])
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(4, 4, 5, 5, generator=g)
    drifted = 1.7 * torch.randn(4, 4, 5, 5, generator=g) + 0.8
    torch.testing.assert_close(channel_stats(match_stats(drifted, channel_stats(ref))), channel_stats(ref))


def test_colour_correction_ramps_in_after_the_overlap():
    """ramp_in leaves the overlap frames as they are and reaches the target at the last frame, linearly;
    in a colour-matched chain the first clip and every overlap stay exactly the uncorrected chain's,
    and the first clip's statistics are reached at the end of each later clip."""
    z, target = torch.zeros(5, 1, 1, 1), torch.full((5, 1, 1, 1), 3.0)
    assert ramp_in(z, target, 2)[:, 0, 0, 0].tolist() == pytest.approx([0, 0, 1, 2, 3])
    T, K = 4, 1
    clips = plan_chain(10, T, K, video_seed=1)

    def run(colour_match):
        g = torch.Generator().manual_seed(0)

        def sample_clip(frame, seed, wrap):
            z = torch.randn(T, 2, 3, 3, generator=g) * (1 + seed % 3) + seed % 5  # clips of other statistics
            if wrap is not None:
                z[:K] = wrap.__self__.known  # what the tie does to the overlap frames
            return z

        return sample_chain("first", clips, T, sample_clip, lambda z, i: i, colour_match=colour_match)

    plain, matched = run(False), run(True)
    torch.testing.assert_close(matched[:T], plain[:T])  # the first clip is the one-clip video
    # Clip 1 as sampled (its overlap tied to clip 0's last frame, which is the same in both chains),
    # moved toward the first clip's statistics: not at all on the overlap, fully on its last frame.
    s, e = clips[1].start, clips[1].end
    raw = plain[s:e]
    full = match_stats(raw, channel_stats(plain[:T]))
    torch.testing.assert_close(matched[s:e], ramp_in(raw, full, K))
    torch.testing.assert_close(matched[s], raw[0])
    torch.testing.assert_close(matched[e - 1], full[-1])
    assert not torch.allclose(matched[s + 1:e], raw[1:], atol=0.1)


def test_sample_chain_joins_clips_with_fake_parts():
    """Clip i is conditioned on the chain's frame where it starts; the overlap is crossfaded; the
    result is on the CPU."""
    T, K = 4, 2
    clips = plan_chain(9, T, K, video_seed=1)
    seen = []

    def sample_clip(frame, seed, wrap):
        seen.append((frame, seed, wrap is not None))
        return torch.full((T, 1, 1, 1), float(len(seen)))  # clip i's latents are all i + 1

    def decode_frame(z, index):
        return float(z[index])

    z = sample_chain("first", clips, T, sample_clip, decode_frame)
    assert z.shape[0] == 9 and z.device.type == "cpu"
    assert [s[1] for s in seen] == [c.seed for c in clips] and [s[2] for s in seen] == [False, True, True, True]
    assert seen[0][0] == "first" and seen[1][0] == 1.0  # clip 1 conditioned on frame 2, which clip 0 made
    assert z[:, 0, 0, 0].tolist() == pytest.approx([1, 1, 1 + 1 / 3, 1 + 2 / 3, 2 + 1 / 3, 2 + 2 / 3, 3 + 1 / 3,
                                                    3 + 2 / 3, 4])


class OnDevice(torch.Tensor):
    """Stands for latents on the accelerator in a CPU test: operations keep the type, `.cpu()` gives a
    plain tensor (as it copies device latents to the host)."""

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).clone()


def test_finished_clips_leave_the_device():
    """The CPU-runnable half of "memory stays that of one clip": each clip's latents come back from the
    (fake) device, are moved to the CPU before the next clip starts and are no longer referenced there;
    the chain handed to the frame decoder, the known overlap latents of the tie (K frames) and the
    result are host tensors."""
    import gc
    import weakref

    T, K = 4, 2
    clips = plan_chain(11, T, K, video_seed=1)
    on_device, seen = [], []

    def sample_clip(frame, seed, wrap):
        gc.collect()
        seen.append(sum(ref() is not None for ref in on_device))  # earlier clips' device latents still alive
        if wrap is not None:
            known = wrap.__self__.known
            assert known.shape[0] == K and type(known) is torch.Tensor
        z = torch.randn(T, 4, 2, 2).as_subclass(OnDevice)  # (T, C, h, w) "on the device"
        on_device.append(weakref.ref(z))
        return z

    def decode_frame(z, index):
        assert type(z) is torch.Tensor  # the chain so far waits on the CPU
        return index

    z = sample_chain("first", clips, T, sample_clip, decode_frame)
    assert seen == [0] * len(clips) and len(clips) == 5
    assert type(z) is torch.Tensor and z.shape[0] == 11
    z_matched = sample_chain("first", clips, T, sample_clip, decode_frame, colour_match=True)
    assert type(z_matched) is torch.Tensor


def test_device_sees_one_clip_at_a_time(pipe, monkeypatch):
    """On the tiny model: every sampling call makes one clip of T frames, every decoder call gets at
    most decoding_t frames, while the chained video has 3 clips."""
    sampled, decoded = [], []
    sample_video, decode = pipe.model.sample_video, pipe.model.decode_first_stage

    def spy_sample(batch, num_frames, noise, **kwargs):
        sampled.append(noise.shape[0])
        return sample_video(batch, num_frames, noise, **kwargs)

    def spy_decode(z, **kwargs):
        decoded.append(z.shape[0])
        return decode(z, **kwargs)

    monkeypatch.setattr(pipe.model, "sample_video", spy_sample)
    monkeypatch.setattr(pipe.model, "decode_first_stage", spy_decode)
    T = pipe.defaults.num_frames
    opts = SamplingOptions(seed=5, num_steps=1, total_frames=3 * T - 2, chain_overlap=1, decoding_t=2)
    result = pipe.generate(Image.fromarray(random_rgb(64, 128, 7)), opts)
    assert result.frames.shape[0] == 3 * T - 2 and len(result.settings["chain"]["clips"]) == 3
    assert sampled == [T] * 3 and decoded and max(decoded) <= 2


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def test_chained_video_on_the_tiny_model(pipe):
    image = Image.fromarray(random_rgb(64, 128, 3))
    opts = SamplingOptions(seed=4, num_steps=2, total_frames=10, chain_overlap=2)
    z = pipe.sample_latents(image, opts)
    T = pipe.defaults.num_frames
    assert z.shape[0] == 10 and z.device.type == "cpu"
    # The first clip is the one-clip video of the same seed (up to its crossfaded overlap).
    single = pipe.sample_latents(image, SamplingOptions(seed=4, num_steps=2)).cpu()
    torch.testing.assert_close(z[:T - 2], single[:T - 2])
    # Fewer frames than a clip: the first ones of the one-clip video.
    torch.testing.assert_close(pipe.sample_latents(image, SamplingOptions(seed=4, num_steps=2, total_frames=2)), single[:2])
    steps = []
    result = pipe.generate(image, opts, progress=lambda i, n, stage: steps.append((i, n, stage)))
    assert [s for s in steps if s[2] == "sampling"] == [(i, 8, "sampling") for i in range(1, 9)]  # 4 clips x 2 steps
    assert result.frames.shape[0] == 10 and result.settings["total_frames"] == 10
    chain = result.settings["chain"]
    assert [(c["start"], c["end"], c["overlap"]) for c in chain["clips"]] == [(0, 4, 0), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    seed = result.settings["seed"]
    assert [c["seed"] for c in chain["clips"]] == [clip_seed(seed, i) for i in range(4)]
    assert chain["overlap"] == 2 and chain["clip_frames"] == T and chain["color_match"] is False
    assert chain["clips"][0]["colour_drift"] == 0.0 and len(chain["clips"][3]["colour_mean"]) == 3
    # Reproducible: the same options give the same latents, hence the same frames.
    np.testing.assert_array_equal(result.frames, pipe.decode_latents(z, opts))


def test_chained_clips_attend_to_the_first_frame(pipe, monkeypatch):
    """Every clip of a chain gets the CLIP embedding of the video's first frame, while its concatenated
    latent is that of the frame it starts on (a clip's colour errors do not feed the next clip's
    conditioning); with anchor=False (the benchmark's ablation) both come from the start frame."""
    import sgm.inference.pipeline as pipeline_module

    batches = []
    original = pipeline_module.video_batch

    def spy(image, *args, **kwargs):
        batch = original(image, *args, **kwargs)
        batches.append((image.cpu(), batch["cond_frames_without_noise"].cpu()))
        return batch

    monkeypatch.setattr(pipeline_module, "video_batch", spy)
    image = Image.fromarray(random_rgb(64, 128, 6))
    opts = SamplingOptions(seed=3, num_steps=1, total_frames=8, chain_overlap=1).filled(pipe.defaults)
    result = pipe.generate(image, opts)
    assert len(batches) == 3 and result.settings["chain"]["clip_embedding"] == "first frame"
    first = batches[0][0]
    for start, clip in batches[1:]:
        assert not torch.equal(start, first)  # conditioned on the frame where it starts
        torch.testing.assert_close(clip, first)  # attending to the first frame
    batches.clear()
    with torch.no_grad():
        _, record = pipe._chained_latents(pipe.prepare_image(image, opts), opts, 3, None, anchor=False)
    assert record["clip_embedding"] == "clip start"
    assert all(torch.equal(start, clip) for start, clip in batches) and len(batches) == 3


@pytest.mark.gpu
def test_chained_video_needs_the_memory_of_one_clip():
    """Finished clips wait on the CPU: a video of 4 clips peaks at the accelerator memory of one."""
    import dataclasses

    from sgm.inference import VideoPipeline
    from tests.helpers import TINY_CONFIG
    from tests.inference_helpers import tiny_checkpoint

    pipe = VideoPipeline.load(config=str(TINY_CONFIG), ckpt=str(tiny_checkpoint()), device="cuda", dtype="fp32")
    image = Image.fromarray(random_rgb(64, 128, 5))
    one = SamplingOptions(seed=2, num_steps=2)
    peaks = []
    for opts in (one, dataclasses.replace(one, total_frames=4 * pipe.defaults.num_frames)):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        pipe.generate(image, opts)
        peaks.append(torch.cuda.max_memory_allocated() - base)
    assert peaks[1] <= 1.1 * peaks[0] + 2**20, peaks


def test_demo_total_frames_control():
    from sgm.demo.form import FormValues

    values = dict(num_frames=4, num_steps=2, fps_id=6, motion_bucket_id=127, cond_aug=0.02, min_cfg=1.0, max_cfg=2.5,
                  seed=7, decoding_t=4, width=128, height=64, crop_x=0.5, crop_y=0.5)
    assert FormValues(**values).to_options().total_frames is None  # the control left at 0: one clip
    assert FormValues(**values, total_frames=12.0).to_options().total_frames == 12
    with pytest.raises(ValueError, match="total frames must be a whole number"):
        FormValues(**values, total_frames=2.5).to_options()


def test_benchmark_join_ratio_sees_a_jump():
    """scripts/benchmark/long_video.py's metric: 1 for steady motion, large for a jump at a join."""
    from scripts.benchmark.long_video import coherence, join_ratio

    steady = np.stack([np.full((2, 2, 3), 10 * t, np.uint8) for t in range(12)])  # 10 per frame
    clips = [{"start": 0, "overlap": 0}, {"start": 3, "overlap": 2}, {"start": 7, "overlap": 2}]
    assert join_ratio(steady, clips) == pytest.approx(1.0)
    jumpy = steady.astype(int)
    jumpy[5:] += 40  # the transition 4 -> 5 lies in the second clip's overlap: 50 against 10 elsewhere
    jumpy[9:] += 40  # and 8 -> 9 in the third's
    assert join_ratio(np.clip(jumpy, 0, 255).astype(np.uint8), clips) == pytest.approx(5.0)
    other = steady + 100  # a video 100 away at every frame: consecutive frames are 10 apart, 0.1 of that
    assert coherence([steady, other], [clips, clips]) == pytest.approx(0.1)


def test_benchmark_join_sees_a_jump_into_the_overlap():
    """The join counts the transition into the overlap frames too: a crossfade that moves the jump there
    (no tie) cannot hide it as a change inside the clip."""
    from scripts.benchmark.long_video import join_profile, join_ratio

    steady = np.stack([np.full((2, 2, 3), 10 * t, np.int64) for t in range(12)])
    clips = [{"start": 0, "overlap": 0}, {"start": 3, "overlap": 1}, {"start": 6, "overlap": 1}, {"start": 9, "overlap": 1}]
    jumpy = steady.copy()
    for s in (3, 6, 9):
        jumpy[s:] += 40  # frame s - 1 -> s, into each overlap frame: 50 against 10 elsewhere
    frames = np.clip(jumpy, 0, 255).astype(np.uint8)
    assert join_ratio(frames, clips) == pytest.approx(5.0)
    profile = join_profile(frames, clips)
    assert profile["into"] == pytest.approx(50.0) and profile["out"] == pytest.approx(10.0)
    assert profile["inside"] == pytest.approx(10.0)


def test_benchmark_overlap_contrast_sees_a_blended_frame():
    """A latent crossfade of two different frames washes the overlap out; the benchmark's contrast says so,
    and it is 1 when the overlap frame is as sharp as its neighbours. Still truths are told apart."""
    from scripts.benchmark.long_video import overlap_contrast, stands_still

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, 16, 16, 3)).astype(np.uint8)
    clips = [{"start": 0, "overlap": 0}, {"start": 4, "overlap": 1}]
    sharp = overlap_contrast(frames, clips)
    blended = frames.copy()
    blended[4] = ((frames[4].astype(int) + rng.integers(0, 256, (16, 16, 3))) // 2).astype(np.uint8)
    assert sharp == pytest.approx(1.0, abs=0.05)
    assert overlap_contrast(blended, clips) < 0.8  # the mean of two unrelated images: std / sqrt(2)
    assert stands_still(np.repeat(frames[:1], 8, axis=0)) and not stands_still(frames)


@pytest.mark.slow
def test_chain_tie_probe_runs_from_the_command_line(tmp_path):
    """scripts/benchmark/chain_tie_probe.py on the tiny model (one input): it reaches into the pipeline's
    sampling and decoding, so this keeps it running when they change; it prints its table of finite figures."""
    import subprocess
    import sys

    from tests.helpers import TINY_CONFIG
    from tests.inference_helpers import tiny_checkpoint
    from tests.training_helpers import REPO

    run = subprocess.run([sys.executable, "scripts/benchmark/chain_tie_probe.py", "--config", str(TINY_CONFIG),
                          "--ckpt", str(tiny_checkpoint()), "--inputs", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    last = run.stdout.strip().splitlines()[-1]
    figures = [float(v) for v in last.strip("|").split("|")]
    assert len(figures) == 4 and all(np.isfinite(figures)) and figures[0] > 0  # frames of a clip differ
