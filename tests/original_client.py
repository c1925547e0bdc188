"""A sampling client written from the description of the original sgm's video sampling script
(`scripts/sampling/simple_video_sample.py`, the body of `sample()`): it drives `model.conditioner`,
`model.denoiser`, `model.sampler` and `model.decode_first_stage` directly, as user code written
against the original does. `tests/test_original_client.py` runs it on this package and compares
with the numbers it gave on the original implementation.

Regenerating the expected numbers (a checkout of Stability-AI/generative-models is needed; its
code is never copied here):

    python tests/original_client.py --original /path/to/generative-models \
        --reference /path/to/shared/reference --out tests/fixtures/original_client.safetensors

Every run is on CPU in float32 without autocast (autocast on CPU would compare two bf16 roundings
instead of the math). IdentityGuider is left out: the script's (2, T) `image_only_indicator` assumes
a guided batch, and the original fails on it exactly as this package does.
"""
import argparse
import math
import sys
from typing import Dict, List, Tuple

import torch

T, STEPS, DECODING_T = 4, 3, 2  # DECODING_T < T: the decoder runs in chunks, as the script does with decoding_t
UC_KEYS = ["cond_frames", "cond_frames_without_noise"]
_S = "sgm.modules.diffusionmodules.sampling."
_G = "sgm.modules.diffusionmodules.guiders."
SAMPLERS: Dict[str, Tuple[str, Dict]] = {
    "euler": (_S + "EulerEDMSampler", {}),
    "euler_churn": (_S + "EulerEDMSampler", {"s_churn": 1.0}),
    "heun": (_S + "HeunEDMSampler", {}),
    "euler_a": (_S + "EulerAncestralSampler", {}),
    "dpmpp_2s_a": (_S + "DPMPP2SAncestralSampler", {}),
    "dpmpp_2m": (_S + "DPMPP2MSampler", {}),
    "lms": (_S + "LinearMultistepSampler", {}),
}
GUIDERS: Dict[str, Tuple[str, Dict]] = {
    "vanilla": (_G + "VanillaCFG", {"scale": 2.0}),
    "linear": (_G + "LinearPredictionGuider", {"max_scale": 3.0, "min_scale": 1.5, "num_frames": T}),
    "triangle": (_G + "TrianglePredictionGuider", {"max_scale": 3.0, "min_scale": 1.5, "num_frames": T}),
    "trapezoid": (_G + "TrapezoidPredictionGuider", {"max_scale": 3.0, "num_frames": T, "edge_perc": 0.25}),
    "spatiotemporal": (_G + "SpatiotemporalPredictionGuider", {"max_scale": 3.0, "num_frames": T, "num_views": 2}),
}
DISCRETIZATION = {"target": "sgm.modules.diffusionmodules.discretizer.EDMDiscretization", "params": {"sigma_max": 700.0}}


def sampler_config(sampler: str, guider: str) -> Dict:
    target, params = SAMPLERS[sampler]
    g_target, g_params = GUIDERS[guider]
    return {"target": target, "params": {**params, "num_steps": STEPS, "discretization_config": DISCRETIZATION,
                                         "guider_config": {"target": g_target, "params": g_params}, "device": "cpu"}}


def get_batch(keys: List[str], value_dict: Dict, n: List[int], t: int) -> Tuple[Dict, Dict]:
    """The script's batch: scalar conditions repeated once per frame, images once per video."""
    batch = {}
    for key in keys:
        if key in ("fps_id", "motion_bucket_id", "cond_aug"):
            batch[key] = torch.tensor([value_dict[key]]).repeat(math.prod(n))
        elif key in ("cond_frames", "cond_frames_without_noise"):
            batch[key] = value_dict[key].expand(n[0], *value_dict[key].shape[1:])
        else:
            batch[key] = value_dict[key]
    batch["num_video_frames"] = t
    batch_uc = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    return batch, batch_uc


def sample(model, image: torch.Tensor, seed: int, fps_id: int = 6, motion_bucket_id: int = 127,
           cond_aug: float = 0.02) -> torch.Tensor:
    """One video (T, 3, H, W) in [0, 1] from `image` (1, 3, H, W) in [-1, 1], as the script makes it."""
    torch.manual_seed(seed)
    value_dict = {"cond_frames_without_noise": image, "motion_bucket_id": motion_bucket_id, "fps_id": fps_id,
                  "cond_aug": cond_aug, "cond_frames": image + cond_aug * torch.randn_like(image)}
    with torch.no_grad():
        keys = list({e.input_key for e in model.conditioner.embedders})
        batch, batch_uc = get_batch(keys, value_dict, [1, T], T)
        c, uc = model.conditioner.get_unconditional_conditioning(batch, batch_uc=batch_uc,
                                                                  force_uc_zero_embeddings=UC_KEYS)
        for k in ("crossattn", "concat"):
            c[k] = c[k].repeat_interleave(T, dim=0)
            uc[k] = uc[k].repeat_interleave(T, dim=0)
        h, w = image.shape[2:]
        randn = torch.randn(T, 4, h // 8, w // 8)
        additional_model_inputs = {"image_only_indicator": torch.zeros(2, T), "num_video_frames": batch["num_video_frames"]}

        def denoiser(input, sigma, c):
            return model.denoiser(model.model, input, sigma, c, **additional_model_inputs)

        samples_z = model.sampler(denoiser, randn, cond=c, uc=uc)
        model.en_and_decode_n_samples_a_time = DECODING_T
        samples_x = model.decode_first_stage(samples_z)
        return torch.clamp((samples_x + 1.0) / 2.0, min=0.0, max=1.0)


def build_model(reference_dir):
    """The reference's tiny SVD-shaped model with its deterministic weights (`golden.fill_`)."""
    import open_clip
    from omegaconf import OmegaConf
    from safetensors import safe_open

    from sgm.util import instantiate_from_config

    gdir = reference_dir / "golden"
    sys.path.insert(0, str(reference_dir))
    import golden

    open_clip.add_model_config(str(gdir / "tiny_clip_public.json"))
    model = instantiate_from_config(OmegaConf.load(gdir / "tiny_public.yaml").model).eval()
    golden.fill_(model, seed=0)
    with safe_open(str(gdir / "tiny_public.safetensors"), "pt") as f:
        image = f.get_tensor("input.image")
    return model, image


def run_all(model, image) -> Dict[str, torch.Tensor]:
    """For every sampler x guider: a subsample of the frames, per-frame channel means, and the next
    two numbers of the global RNG after the run (the random stream the script leaves behind)."""
    from sgm.util import instantiate_from_config

    out = {}
    for i, sampler in enumerate(SAMPLERS):
        for j, guider in enumerate(GUIDERS):
            model.sampler = instantiate_from_config(sampler_config(sampler, guider))
            video = sample(model, image, seed=10 * i + j)
            name = f"{sampler}.{guider}"
            out[f"{name}.frames"] = video[:, :, ::16, ::16].contiguous()  # (T, 3, H/16, W/16)
            out[f"{name}.means"] = video.mean(dim=(2, 3))  # (T, 3)
            out[f"{name}.rng"] = torch.randn(2)
    return out


if __name__ == "__main__":  # pragma: no cover - run by hand against the original
    from pathlib import Path

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--original", required=True, help="a checkout of Stability-AI/generative-models")
    p.add_argument("--reference", required=True, help="the shared reference fixtures")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    sys.path.insert(0, a.original)
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    save_file(run_all(*build_model(Path(a.reference))), a.out)
