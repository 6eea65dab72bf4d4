"""The serving benchmark's RSS sampler: a peak that catches a spike, a median that does not."""

import os
import time

from benchmarks.harness.rss import RssSampler


def test_a_passing_spike_sets_the_peak_but_not_the_median() -> None:
    with RssSampler(os.getpid(), interval_s=0.01) as rss:
        time.sleep(0.2)
        spike = bytearray(96 * 2**20)  # zero-filled, so every page is touched
        time.sleep(0.2)
        del spike
        time.sleep(1.0)
    assert len(rss.samples) >= 10
    settled = rss.samples[-1] / 2**20
    assert rss.peak_mb >= settled + 80  # the spike was seen
    assert abs(rss.median_mb - settled) < 20  # most samples were taken without it
    settled_files = rss.file_samples[-1] / 2**20
    assert rss.anon_peak_mb >= settled - settled_files + 80  # the spike is anonymous memory
    assert abs(rss.file_median_mb - settled_files) < 20  # mapped files did not move
