"""The one window sampler (`data/windows.py`) on hand-built episodes: each boundary mode, recency, windows
ending at terminations, and the random draws its defaults make (exactly those replay, datasets and World
Models made before it)."""

from __future__ import annotations

import numpy as np
import pytest

from worldmodels.data import Replay
from worldmodels.data.sources import SampleSpec
from worldmodels.data.windows import Ends, Recent, Windows
from worldmodels.errors import ConfigError


def track(lengths: list[int]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Episodes of `lengths` end to end: `row` numbers each row from 1 (0 is left for padding)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first = np.zeros(sum(lengths), bool)
    first[starts] = True
    return {"row": np.arange(1, sum(lengths) + 1), "is_first": first}, starts


def episode_of(rows: np.ndarray, lengths: list[int]) -> np.ndarray:
    """The episode each row (numbered from 1) belongs to."""
    return np.searchsorted(np.cumsum(lengths), rows - 1, side="right")


def replay_of(lengths: list[int], capacity: int = 1000, seed: int = 0) -> Replay:
    """One stream holding episodes of `lengths`, added row by row in order."""
    data, _ = track(lengths)
    replay = Replay(capacity, 1, seed)
    replay.add(data, np.zeros(len(data["row"]), np.int64))
    return replay


def test_within_windows_never_cross_an_episode_boundary():
    lengths = [3, 7, 5, 2]
    data, starts = track(lengths)
    windows = Windows.of([sum(lengths)], 4, "within", [starts])
    drawn = windows.draw(2000, np.random.default_rng(0))
    batch = windows.take(data, drawn)
    assert batch["row"].shape == (2000, 4) and "mask" not in batch
    episodes = episode_of(batch["row"], lengths)
    assert (episodes == episodes[:, :1]).all()
    # every place a whole window fits, and only those: rows 4..7 of the 7-step episode, 11..12 of the 5-step one
    assert sorted(set(batch["row"][:, 0])) == [4, 5, 6, 7, 11, 12]
    assert not batch["is_first"][:, 1:].any()


def test_within_replay_windows_stay_in_one_episode_across_the_ring_seam():
    lengths = [9, 4, 12, 6, 11]  # 42 rows through a ring of 30: the oldest 12 are evicted mid-episode
    replay = replay_of(lengths, capacity=30)
    batch = replay.sample(500, 5, "within")
    episodes = episode_of(batch["row"], lengths)
    assert (episodes == episodes[:, :1]).all() and not batch["is_first"][:, 1:].any()
    assert batch["row"].min() > 12 and (np.diff(batch["row"], axis=1) == 1).all()
    assert set(episodes[:, 0]) == {2, 3, 4}  # the first is evicted, of the second only its last row is left


def test_cross_windows_span_episodes_and_mark_each_seam_with_is_first():
    lengths = [4, 3, 5, 6]
    replay = replay_of(lengths)
    batch = replay.sample(300, 6)
    rows = batch["row"]
    assert (np.diff(rows, axis=1) == 1).all()  # consecutive rows, whatever the episode
    seam = np.diff(episode_of(rows, lengths), axis=1, prepend=-1) != 0
    np.testing.assert_array_equal(batch["is_first"][:, 1:], seam[:, 1:])
    assert batch["is_first"][:, 1:].any()  # some windows do run into the next episode


def test_pad_end_pads_a_short_episode_after_its_end_with_zeros():
    lengths = [2, 6]
    data, starts = track(lengths)
    windows = Windows.of([8], 4, "pad_end", [starts])
    batch = windows.take(data, windows.draw(4000, np.random.default_rng(1)))
    short = batch["row"][:, 0] == 1
    np.testing.assert_array_equal(batch["row"][short], np.tile([1, 2, 0, 0], (short.sum(), 1)))
    np.testing.assert_array_equal(batch["mask"][short], np.tile([True, True, False, False], (short.sum(), 1)))
    assert not batch["is_first"][short][:, 2:].any()  # the next episode's first row is padding here
    assert batch["mask"][~short].all() and sorted(set(batch["row"][~short, 0])) == [3, 4, 5]
    assert abs(short.mean() - 2 / 8) < 0.03  # episodes are drawn in proportion to their length


def test_pad_start_pads_a_short_episode_before_its_start():
    lengths = [6, 2]
    data, starts = track(lengths)
    windows = Windows.of([8], 4, "pad_start", [starts])
    batch = windows.take(data, windows.draw(1000, np.random.default_rng(2)))
    short = batch["row"][:, -1] == 8
    np.testing.assert_array_equal(batch["row"][short], np.tile([0, 0, 7, 8], (short.sum(), 1)))
    np.testing.assert_array_equal(batch["mask"][short], np.tile([False, False, True, True], (short.sum(), 1)))
    assert batch["mask"][~short].all() and sorted(set(batch["row"][~short, 0])) == [1, 2, 3]


def test_padded_replay_windows_carry_the_mask_and_zeros():
    replay = replay_of([3, 10])
    batch = replay.sample(200, 5, "pad_end")
    short = batch["row"][:, 0] == 1
    assert short.any() and (batch["row"][short][:, 3:] == 0).all() and not batch["mask"][short][:, 3:].any()
    only = SampleSpec(2, 5, keys=("row",)).select(batch)
    assert set(only) == {"row", "mask"}  # the mask goes wherever a padded batch goes


def test_tiles_cover_every_transition_of_every_episode_once():
    lengths = [5, 12, 1]
    data, starts = track(lengths)
    windows = Windows.of([18], 4, "pad_end", [starts])
    batch = windows.take(data, windows.tiles(3))
    real = batch["mask"][:, :-1] & batch["mask"][:, 1:]
    pairs = sorted(zip(batch["row"][:, :-1][real], batch["row"][:, 1:][real]))
    episode = episode_of(np.arange(1, 19), lengths)
    assert pairs == [(r, r + 1) for r in range(1, 18) if episode[r - 1] == episode[r]]
    assert len(batch["row"]) == 2 + 4 + 1  # the one-step episode still gets its (padded) window


def recent_share(windows: Windows, rows: np.ndarray, newest: int, recent: Recent | None) -> float:
    drawn = windows.draw(4000, np.random.default_rng(3), recent)
    last_real = np.minimum(drawn.start + windows.length, drawn.hi) - 1
    return float((last_real >= rows - newest).mean())


@pytest.mark.parametrize("boundary", ["cross", "within", "pad_end"])
def test_recency_skews_draws_towards_the_newest_steps(boundary):
    lengths = [50] * 20  # 1000 rows; the newest 100 are the last two episodes
    _, starts = track(lengths)
    windows = Windows.of([1000], 10, boundary, [starts])
    base = recent_share(windows, 1000, 100, None)
    skewed = recent_share(windows, 1000, 100, Recent(0.5, 100))
    assert base < 0.15  # about a tenth of the windows end in the newest tenth of the rows
    assert abs(skewed - (0.5 + 0.5 * base)) < 0.04  # half the batch from them, the other half as before
    drawn = windows.draw(64, np.random.default_rng(4), Recent(0.25, 100))
    assert (np.minimum(drawn.start + 10, drawn.hi)[-16:] > 900).all()  # the batch's last quarter


def test_recency_counts_the_newest_steps_of_each_replay_stream():
    replay = Replay(1000, 2, seed=5)
    data, _ = track([300])
    replay.add(data, np.zeros(300, np.int64))
    data["row"] = data["row"] + 1000  # the second stream: rows 1001 …, only 100 of them
    replay.add({k: v[:100] for k, v in data.items()}, np.ones(100, np.int64))
    batch = replay.sample(1000, 10, recent=Recent(1.0, 20))
    ends = batch["row"][:, -1]
    assert set(ends // 1000) == {0, 1} and ((ends % 1000 > 280) | (ends > 1080)).all()


def test_recency_falls_back_to_every_window_while_the_newest_steps_hold_none():
    lengths = [30, 3]
    _, starts = track(lengths)
    windows = Windows.of([33], 5, "within", [starts])
    drawn = windows.draw(100, np.random.default_rng(6), Recent(0.5, 2))  # only the 3-step episode is that new
    assert (drawn.hi == 30).all()


@pytest.mark.parametrize(
    "boundary, ends",
    [("cross", {11, 14, 54}), ("within", {11, 54}), ("pad_end", {11, 54, -1}), ("pad_start", {11, 14, 54})],
)
def test_a_share_of_windows_ends_at_a_termination_as_late_as_the_boundary_allows(boundary, ends):
    lengths = [12, 3, 40, 20]  # terminations end the first three episodes; the last is cut off by a time limit
    data, starts = track(lengths)
    terminal = [np.array([11, 14, 54])]  # their rows, counted from 0
    windows = Windows.of([75], 5, boundary, [starts])
    last = set()
    for seed in range(50):
        drawn = windows.draw(8, np.random.default_rng(seed), ends=(Ends(0.25), terminal))
        rows = windows.take(data, drawn)["row"] - 1  # padding: -1
        assert np.isin(rows[6:], terminal[0]).any(1).all()  # the batch's last quarter holds a termination each
        last |= set(rows[6:, -1])
        plain = windows.draw(6, np.random.default_rng(seed))  # the rest is drawn as without terminations
        np.testing.assert_array_equal(drawn.start[:6], plain.start)
    # as its last row where the boundary allows: `within` has no window of the 3-step episode, `pad_end`
    # starts that episode's one window at its first step (padded after its end)
    assert last == ends
    # a share larger than the terminations held draws as many as are held: 3 of 400 here (`within` holds 2)
    drawn = windows.draw(400, np.random.default_rng(7), ends=(Ends(0.25), terminal))
    ending = np.isin(windows.take(data, drawn)["row"] - 1, terminal[0]).any(1)
    assert ending[-len(ends) :].all()


def test_replay_draws_windows_ending_at_terminations_once_it_holds_one():
    replay = replay_of([30, 30])
    plain = replay_of([30, 30]).sample(8, 6)
    np.testing.assert_array_equal(replay.sample(8, 6, ends=Ends(0.5))["row"], plain["row"])  # none held yet
    replay.data["is_terminal"] = np.zeros_like(replay.data["is_first"])
    replay.data["is_terminal"][0, 29] = True  # the first episode ends by termination
    batch = replay.sample(8, 6, ends=Ends(0.5))  # a share of 4, but one termination is held: one window
    assert batch["row"][7, -1] == 30 and batch["is_terminal"][7, -1]
    assert batch["is_terminal"][:, -1].sum() == 1
    replay.data["is_terminal"][0, 59] = True  # and the second: two of the four
    batch = replay.sample(8, 6, ends=Ends(0.5))
    assert np.isin(batch["row"][6:, -1], [30, 60]).all() and batch["is_terminal"][6:, -1].all()


def test_default_draws_are_one_uniform_draw_among_all_windows():
    """Replay (windows across episodes) and datasets (within them) draw what they drew before the shared
    sampler: one `integers(total)` call, counted stream by stream (episode by episode) in order."""
    replay = Replay(capacity=40, num_streams=2, seed=9)
    data, _ = track([15])
    replay.add(data, np.zeros(15, np.int64))
    replay.add({k: np.concatenate([v, v]) for k, v in data.items()}, np.ones(30, np.int64))  # wraps its ring
    batch = replay.sample(6, 4)
    flat = np.random.default_rng(9).integers(12 + 17, size=6)  # 12 windows in stream 0, 17 in stream 1
    stream, offset = (flat >= 12).astype(int), np.where(flat >= 12, flat - 12, flat)
    first = np.where(stream == 0, 1, 11)  # stream 1 holds the last 20 of its 30 rows: 11 … 15, 1 … 15
    expected = (first + offset - 1) % 15 + 1
    np.testing.assert_array_equal(batch["row"][:, 0], expected)

    lengths = [3, 7, 5]
    data, starts = track(lengths)
    windows = Windows.of([15], 4, "within", [starts])
    drawn = windows.draw(6, np.random.default_rng(10))
    flat = np.random.default_rng(10).integers(4 + 2, size=6)
    np.testing.assert_array_equal(drawn.start, np.where(flat < 4, 3 + flat, 10 + flat - 4))


def test_padded_draws_are_an_episode_by_length_then_a_start():
    """World Models' draws: an episode in proportion to its length, then a start among its windows."""
    lengths = np.array([2, 9, 5])
    _, starts = track(list(lengths))
    windows = Windows.of([16], 4, "pad_end", [starts])
    drawn = windows.draw(8, np.random.default_rng(11))
    rng = np.random.default_rng(11)
    episode = rng.choice(3, 8, p=lengths / lengths.sum())
    start = starts[episode] + rng.integers(0, np.maximum(lengths - 4, 0)[episode] + 1)
    np.testing.assert_array_equal(drawn.start, start)


def test_bad_boundary_recency_or_priority_is_one_clear_error():
    with pytest.raises(ConfigError, match="window boundary 'inside' is unknown; known: cross, within, pad_end"):
        SampleSpec(4, 8, boundary="inside")
    with pytest.raises(ConfigError, match=r"recent.fraction is 0; it is a share of the batch, in \(0, 1\]"):
        Recent(0, 10)
    with pytest.raises(ConfigError, match="recent.steps is 0"):
        Recent(0.5, 0)
    with pytest.raises(ConfigError, match=r"share of windows ending at a termination is 1.5; it is in \(0, 1\]"):
        Ends(1.5)
    replay = Replay(100, 1, seed=0, priority=(1.0, 1.0))
    data, _ = track([20])
    replay.add(data, np.zeros(20, np.int64))
    with pytest.raises(ConfigError, match="prioritised replay draws whole windows"):
        replay.sample(4, 5, "pad_end")
    with pytest.raises(ConfigError, match="cannot also favour the newest or the terminations"):
        replay.sample(4, 5, recent=Recent(0.5, 5))
    with pytest.raises(ConfigError, match="cannot also favour the newest or the terminations"):
        replay.sample(4, 5, ends=Ends(0.5))
    with pytest.raises(ValueError, match="replay holds no sequence of length 30 inside one episode yet"):
        replay.sample(4, 30, "within")
