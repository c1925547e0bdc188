"""Motion conditioning: the mapping from a clip's motion score to SVD's `motion_bucket_id`.

SVD conditions on an integer `motion_bucket_id` in 0..255 (127 is the sampling default). The paper derives it
from optical-flow magnitude but does not publish the mapping, so we use one simple documented rule everywhere
(the toy shard writer, the video dataset's fallback when a shard has a score but no bucket):

    motion_bucket_id = clip(round(motion_score * scale), 0, 255)

with `scale = DEFAULT_MOTION_BUCKET_SCALE = 127`. In the toy shards `motion_score` is the object's speed in
frame widths per second, so the fastest toy speed (1 width/s) lands on SVD's default bucket 127 and a static
clip on bucket 0. Curated real data (issue #5) writes `motion_bucket_id` itself; there `scale` only matters
when a shard carries a score alone.

NOTE: both scores are in frame widths per second but measure different things: the toy score is the moving
object's own speed, the curation score (`sgm.data.curation.motion`) the optical flow averaged over the whole
frame. A toy clip at 0.25-0.5 widths/s measures about 0.01-0.02 in curation, so toy buckets and curated
buckets are not on one scale; do not mix the two kinds of shards in one run.
"""
DEFAULT_MOTION_BUCKET_SCALE = 127.0
MAX_MOTION_BUCKET_ID = 255


def motion_bucket_from_score(motion_score: float, scale: float = DEFAULT_MOTION_BUCKET_SCALE) -> int:
    """`clip(round(motion_score * scale), 0, 255)`: the bucket id for a non-negative motion score."""
    if scale <= 0:
        raise ValueError(f"motion bucket scale must be positive, got {scale}")
    return int(min(max(round(float(motion_score) * scale), 0), MAX_MOTION_BUCKET_ID))
