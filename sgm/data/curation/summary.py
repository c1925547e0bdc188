"""The run summary: clip counts kept/dropped per filter (JSON + markdown) and score histograms (PNG)."""
import json
from pathlib import Path
from typing import Dict, List, Sequence

from .config import FilterConfig
from .filters import FILTERS, active_filters, clip_score

__all__ = ["build_summary", "write_summary", "plot_histograms"]

SCORES = ("duration", "motion_score", "frame_diff", "text_area", "clip_aesthetic", "clip_similarity")


def build_summary(records: Sequence[dict], decisions: Dict[str, dict], cfg: FilterConfig, shards: Sequence[Path],
                  mapping: dict) -> dict:
    """Counts over all records; `decisions[clip_id]` holds `failed` and `missing` filter names."""
    errors = [{"path": r["path"], "error": r["error"]} for r in records if r["status"] != "ok"]
    truncated = [{"path": r["path"], "error": r["truncated"]} for r in records if r.get("truncated")]
    clips = [c for r in records if r["status"] == "ok" for c in r["clips"]]
    per_filter = {}
    for f, threshold in active_filters(cfg):
        failed = [c for c in clips if f.name in decisions[c["clip_id"]]["failed"]]
        per_filter[f.name] = {
            "score": f.score,
            "bound": f"{f.bound} {threshold}",
            "dropped": len(failed),
            "dropped_by_this_alone": sum(decisions[c["clip_id"]]["failed"] == [f.name] for c in failed),
            "score_missing": sum(f.name in decisions[c["clip_id"]]["missing"] for c in clips),
        }
    kept = sum(not decisions[c["clip_id"]]["failed"] for c in clips)
    return {
        "videos": {"total": len(records), "analysed": len(records) - len(errors), "unreadable": len(errors),
                   "errors": errors, "truncated": truncated},
        "clips": {"total": len(clips), "kept": kept, "dropped": len(clips) - kept},
        "filters": per_filter,
        "shards": {"count": len(shards), "bytes": sum(p.stat().st_size for p in shards),
                   "files": [p.name for p in shards]},
        "motion_mapping": {k: v for k, v in mapping.items() if k != "edges"},
    }


def _markdown(summary: dict) -> str:
    v, c = summary["videos"], summary["clips"]
    lines = [
        "# Curation summary", "",
        f"- videos: {v['total']} ({v['analysed']} analysed, {v['unreadable']} unreadable)",
        f"- clips: {c['total']} ({c['kept']} kept, {c['dropped']} dropped)",
        f"- shards: {summary['shards']['count']} ({summary['shards']['bytes'] / 1e6:.1f} MB)",
        f"- motion buckets: {summary['motion_mapping'].get('method')} mapping, fitted on "
        f"{summary['motion_mapping'].get('num_fitted')} clips", "",
        "| filter | score | bound | dropped | dropped by this alone | score missing |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, f in summary["filters"].items():
        lines.append(f"| {name} | {f['score']} | {f['bound']} | {f['dropped']} | {f['dropped_by_this_alone']} | {f['score_missing']} |")
    if v["errors"]:
        lines += ["", "## Unreadable videos", ""] + [f"- `{e['path']}`: {e['error']}" for e in v["errors"]]
    if v["truncated"]:
        lines += ["", "## Videos kept up to a decoding error", ""] + [f"- `{e['path']}`: {e['error']}" for e in v["truncated"]]
    return "\n".join(lines) + "\n"


def plot_histograms(clips: Sequence[dict], cfg: FilterConfig, kept_buckets: Sequence[int], out_dir: Path) -> List[Path]:
    """One PNG per score with its thresholds as dashed lines, plus the kept clips' motion buckets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    thresholds = {f.score: [] for f in FILTERS}
    for f, t in active_filters(cfg):
        thresholds[f.score].append(t)
    series = {name: [clip_score(c, name) for c in clips] for name in SCORES}
    series["motion_bucket_id (kept)"] = list(kept_buckets)
    for name, values in series.items():
        values = [v for v in values if v is not None]
        if not values:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.hist(values, bins=min(50, max(5, len(values))), color="#4472c4")
        for t in thresholds.get(name, []):
            ax.axvline(t, color="#c00000", linestyle="--", linewidth=1)
        ax.set_xlabel(name)
        ax.set_ylabel("clips")
        fig.tight_layout()
        path = out_dir / f"{name.split(' ')[0]}{'_kept' if '(kept)' in name else ''}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def write_summary(summary: dict, out_dir: Path) -> None:
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    (out_dir / "summary.md").write_text(_markdown(summary))
