"""Chunked decoding: the windows, exactness with enough overlap on a decoder whose temporal layers
are convolutions, the seam of plain chunking, and the pipeline's use of it."""
import pytest
import torch
import torch.nn as nn
from einops import rearrange

from sgm.inference.decoding import chunk_windows, decode_chunked, effective_overlap, frames_decoded


class TinyTemporalDecoder(nn.Module):
    """Per-frame conv, `layers` residual temporal convs (kernel 3 over time), per-frame output conv.
    Each temporal conv widens the receptive field by one frame on each side."""

    def __init__(self, layers: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.spatial = nn.Conv2d(4, 8, 3, padding=1)
        self.temporal = nn.ModuleList(nn.Conv3d(8, 8, (3, 1, 1), padding=(1, 0, 0)) for _ in range(layers))
        self.out = nn.Conv2d(8, 3, 1)
        self.receptive_field = layers

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (t, 4, h, w) -> (t, 3, h, w), one clip
        x = rearrange(self.spatial(z), "t c h w -> 1 c t h w")
        for conv in self.temporal:
            x = x + torch.tanh(conv(x))
        return self.out(rearrange(x, "1 c t h w -> t c h w"))


@pytest.mark.parametrize("T,decoding_t,overlap", [(25, 14, 0), (25, 14, 3), (25, 7, 3), (10, 4, 1), (5, 14, 2), (9, 3, 1)])
def test_windows_cover_each_frame_once_with_context(T, decoding_t, overlap):
    windows = chunk_windows(T, decoding_t, overlap)
    kept = [k for _, _, ks, ke in windows for k in range(ks, ke)]
    assert kept == list(range(T))
    for start, end, ks, ke in windows:
        assert end - start <= decoding_t and start <= ks < ke <= end
        assert ks - start >= overlap or start == 0
        assert end - ke >= overlap or end == T


def test_windows_reject_a_chunk_without_room():
    with pytest.raises(ValueError, match="decoding_t > 2 \\* overlap"):
        chunk_windows(25, 6, 3)
    with pytest.warns(UserWarning, match="using overlap 2"):
        assert effective_overlap(25, 6, 3) == 2
    assert effective_overlap(4, 4, 3) == 3  # one window: nothing to lower


def test_overlap_at_least_receptive_field_is_exact_and_plain_chunking_shows_the_seam():
    decoder = TinyTemporalDecoder(layers=3).eval()
    z = torch.randn(25, 4, 4, 6)
    with torch.no_grad():
        whole = decoder(z)
        for overlap in (decoder.receptive_field, decoder.receptive_field + 1):
            chunked = decode_chunked(decoder, z, decoding_t=10, overlap=overlap)
            assert chunked.shape == whole.shape
            assert (chunked - whole).abs().max().item() < 1e-5, overlap
        plain = decode_chunked(decoder, z, decoding_t=10, overlap=0)  # what the original script does
        short = decode_chunked(decoder, z, decoding_t=10, overlap=decoder.receptive_field - 1)
    err = (plain - whole).flatten(1).abs().max(1).values  # (T,)
    # The seams after frames 9 and 19: the frames next to a chunk boundary are wrong ...
    assert err[9].item() > 1e-3 and err[10].item() > 1e-3 and err[19].item() > 1e-3
    # ... while frames farther than the receptive field from every boundary are exact.
    assert err[4].item() < 1e-6 and err[14].item() < 1e-6
    assert (short - whole).abs().max().item() > 1e-4  # one frame of context too few is not enough


def test_overlap_costs_decoded_frames_not_window_size():
    assert frames_decoded(25, 14, 0) == 25
    assert frames_decoded(25, 25, 4) == 25
    assert frames_decoded(25, 14, 3) > frames_decoded(25, 14, 1) > 25


def test_overlap_lowers_the_seam_on_svd_decoder_structure():
    """SVD's VideoDecoder (tiny width): GroupNorm over time couples each chunk, so overlap is not exact,
    but it removes most of the seam."""
    from scripts.benchmark.decoder_overlap import build_decoder

    torch.set_num_threads(1)
    decoder = build_decoder(ch=32, seed=0)
    torch.manual_seed(1)
    z = torch.cumsum(0.3 * torch.randn(12, 4, 4, 4), dim=0)

    def decode(chunk):
        return decoder(chunk, timesteps=chunk.shape[0])

    with torch.no_grad():
        whole = decode(z)
        err = {o: (decode_chunked(decode, z, 8, o) - whole).abs().max().item() for o in (0, 3)}
    assert err[3] < 0.5 * err[0]
    assert decoder.temporal_receptive_field() == 29
