"""Sub-progress from ffmpeg's `-progress pipe:1` blocks."""

from __future__ import annotations

from ytmaker_render.encoding import ProgressParser, ProgressSample, percent

BLOCK = """frame=450
fps=88.31
stream_0_0_q=28.0
bitrate=N/A
total_size=1048576
out_time_us=15000000
out_time_ms=15000000
out_time=00:00:15.000000
dup_frames=0
drop_frames=0
speed=2.94x
progress=continue
"""


def feed(text: str) -> list[ProgressSample]:
    parser = ProgressParser()
    return [s for line in text.splitlines() if (s := parser.feed(line)) is not None]


def test_a_block_gives_one_sample_with_the_encoded_position() -> None:
    [sample] = feed(BLOCK)
    assert sample == ProgressSample(out_seconds=15.0, frame=450, speed=2.94, ended=False)
    assert percent(sample, 60.0) == 25.0


def test_before_the_first_frame_the_position_is_na_and_progress_is_zero() -> None:
    [sample] = feed(
        "frame=0\nout_time_us=N/A\nout_time_ms=N/A\nout_time=N/A\nspeed=N/A\nprogress=continue\n"
    )
    assert sample.out_seconds == 0 and sample.speed is None
    assert percent(sample, 60.0) == 0.0


def test_out_time_clock_is_used_when_the_microseconds_are_missing() -> None:
    [sample] = feed("out_time=00:01:02.500000\nprogress=continue\n")
    assert sample.out_seconds == 62.5


def test_progress_stays_below_100_until_ffmpeg_says_end() -> None:
    running, ended = feed(
        "out_time_us=60100000\nprogress=continue\nout_time_us=60100000\nprogress=end\n"
    )
    assert percent(running, 60.0) == 99.0
    assert ended.ended and percent(ended, 60.0) == 100.0


def test_garbage_lines_are_ignored_and_blocks_do_not_leak_into_each_other() -> None:
    samples = feed(
        "not a key value\nframe=x\nout_time_us=1000000\nprogress=continue\nprogress=continue\n"
    )
    assert [s.out_seconds for s in samples] == [1.0, 0.0]
    assert samples[0].frame == 0
