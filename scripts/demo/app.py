"""Stable Video Diffusion web demo (Gradio): upload an image, preview the crop, generate a video.

    python scripts/demo/app.py                                  # svd_xt, weights in checkpoints/
    python scripts/demo/app.py --config configs/tiny/svd_tiny.yaml --random-weights   # tiny model, no weights

Serves on http://127.0.0.1:7860 (this machine only) unless --host/--share say otherwise.
All options: --help; details in docs/demo.md. The logic lives in sgm/demo/.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from sgm.demo.launch import main  # noqa: E402

if __name__ == "__main__":
    main()
