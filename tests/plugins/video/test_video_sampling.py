"""Frame samplers: uniform coverage, fixed-rate sampling against real pts, TSN segment sampling, padding."""

import numpy as np
import pytest

from anymal import InputError
from anymal_video import fps_indices, load_video, sample_indices, segment_indices, uniform_indices
from anymal_video.sampling import pad_to, segment_bounds


def test_uniform_indices_are_segment_centres_covering_the_clip():
    assert uniform_indices(390, 8).tolist() == [24, 73, 121, 170, 219, 268, 316, 365]
    assert uniform_indices(10, 5).tolist() == [1, 3, 5, 7, 9]
    assert uniform_indices(7, 1).tolist() == [3]
    bounds = segment_bounds(390, 8)
    idx = uniform_indices(390, 8)
    assert np.all((bounds[:-1] <= idx) & (idx < bounds[1:]))


def test_uniform_indices_of_a_short_clip_repeat_frames_in_order():
    idx = uniform_indices(3, 8)
    assert len(idx) == 8 and idx.tolist() == sorted(idx.tolist()) and set(idx.tolist()) == {0, 1, 2}


def test_segment_sampling_stays_in_its_segment_and_is_seeded():
    bounds = segment_bounds(390, 8)
    draws = np.stack([segment_indices(390, 8, np.random.default_rng(seed)) for seed in range(200)])
    assert np.all((bounds[:-1] <= draws) & (draws < bounds[1:]))
    assert np.array_equal(segment_indices(390, 8, 7), segment_indices(390, 8, 7))
    assert not np.array_equal(segment_indices(390, 8, 7), segment_indices(390, 8, 8))
    # every frame of a segment gets drawn eventually (uniform within the segment, not fixed)
    first_segment = set(draws[:, 0].tolist())
    assert len(first_segment) > 30 and min(first_segment) >= 0 and max(first_segment) < bounds[1]


def test_a_shared_generator_gives_a_reproducible_sequence_of_different_draws():
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    seq_a = [segment_indices(100, 4, a).tolist() for _ in range(3)]
    seq_b = [segment_indices(100, 4, b).tolist() for _ in range(3)]
    assert seq_a == seq_b and seq_a[0] != seq_a[1]


def test_segment_sampling_of_a_short_clip_stays_in_range():
    for seed in range(20):
        idx = segment_indices(3, 8, seed)
        assert len(idx) == 8 and idx.min() >= 0 and idx.max() <= 2


def test_fps_indices_pick_the_frame_on_screen_at_each_tick(reference_pts):
    pts = reference_pts[3]  # 29.97 fps, 390 frames, 0 .. 12.98 s
    idx = fps_indices(pts, 1.0)
    assert len(idx) == 13  # ticks at 0, 1, ..., 12 s
    for k, i in enumerate(idx):
        assert pts[i] <= k + 1e-6 and (i + 1 == len(pts) or pts[i + 1] > k)
    # NTSC rate: frame 30 starts at 1.001 s, so at t = 1 s frame 29 is still on screen
    assert idx.tolist()[:4] == [0, 29, 59, 89] and pts[30] == pytest.approx(1.001)


def test_fps_indices_at_the_native_rate_return_every_frame(reference_pts):
    pts = reference_pts[0]  # exactly 25 fps
    assert fps_indices(pts, 25.0).tolist() == list(range(len(pts)))
    assert fps_indices(pts, 5.0).tolist() == list(range(0, len(pts), 5))
    assert len(fps_indices(pts, 5.0, max_frames=4)) == 4


def test_fps_sampling_pads_a_short_clip_with_its_last_frame():
    stamps = np.arange(10) / 10.0  # 1 s at 10 fps
    assert sample_indices("fps", stamps, 4, fps=2.0).tolist() == [0, 5, 5, 5]
    assert pad_to(np.array([1, 2, 3, 4, 5]), 3).tolist() == [1, 2, 3]


def test_samplers_reject_empty_clips_and_unknown_methods():
    with pytest.raises(InputError, match="0 frames"):
        uniform_indices(0, 4)
    with pytest.raises(InputError, match="expected uniform, fps or segment"):
        sample_indices("random", np.arange(5.0), 2)


def test_sampled_frames_keep_their_timestamps_from_pts(nasa, reference_pts):
    clip = load_video(nasa, lambda stamps, fps: sample_indices("fps", stamps, 5, fps=0.5), decoder="pyav")
    assert clip.indices.tolist() == fps_indices(reference_pts[3], 0.5, 5).tolist()
    assert np.allclose(clip.timestamps, reference_pts[3][clip.indices], atol=1e-6)
    assert np.all(np.diff(clip.timestamps) > 1.9)
