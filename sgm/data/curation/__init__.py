"""Data curation (issue #5): raw videos -> filtered, annotated webdataset shards (docs/curation.md).

Modules, one stage each (nothing heavy is imported here):
- `config`: every setting and threshold (`load_config`; defaults in configs/curation/default.yaml).
- `inputs`: the video list from folders / `.txt` lists, and its split for job arrays.
- `probe`, `scan`: PyAV probing and the single decoding pass (cut detection + frames sampled at ~2 fps), frames
  upright and as far as the file decodes (`sgm.media_read`).
- `cuts`: PySceneDetect cut detection and splitting into frame-exact clips.
- `motion`, `text`, `clip_scores`, `captions`: per-clip scores and captions.
- `analyze`: `analyze_video(path, cfg)`, the per-video unit of work (for processes, Slurm or Ray).
- `records`: the resumable journal of per-video records and the deterministic clip ids.
- `filters`: keep/drop decisions from stored scores.
- `buckets`: motion score -> `motion_bucket_id` mapping (`load_motion_mapping(path).bucket(score)`).
- `encode`, `shards`, `summary`: clip re-encoding (`sgm.media`), webdataset shards, counts and histograms.
- `pipeline`: `analyze_all` and `build_shards`, the two resumable stages.
- `ray_tasks`: the per-video tasks of both stages as Ray Data tasks on a Ray cluster (`ray=True`, `curate.py --ray`).
"""
