"""Resolving the model and torch thread counts of the API process."""

import pytest

from service.process.threads import ServingThreads, serving_threads, usable_cores


@pytest.mark.parametrize(
    ("device", "cores", "expected"),
    [
        ("cpu", 2, ServingThreads(2, 1)),  # the benchmark machine: a core per model thread
        ("cpu", 16, ServingThreads(2, 8)),  # two model threads still, so batches stay large
        ("cpu", 1, ServingThreads(1, 1)),
        ("cpu", 3, ServingThreads(2, 1)),
        ("cuda", 8, ServingThreads(1, None)),  # one kernel stream; torch's own threads
    ],
)
def test_auto_splits_the_cores_between_model_threads_on_a_cpu(device, cores, expected) -> None:
    assert serving_threads(0, 0, device, {}, cores) == expected


def test_explicit_settings_and_omp_num_threads_are_respected() -> None:
    assert serving_threads(3, 0, "cpu", {}, 12) == ServingThreads(3, 4)
    assert serving_threads(1, 2, "cpu", {}, 2) == ServingThreads(1, 2)
    assert serving_threads(0, 0, "cpu", {"OMP_NUM_THREADS": "2"}, 2) == ServingThreads(2, None)
    assert serving_threads(2, 3, "cuda", {}, 8) == ServingThreads(2, 3)


def test_usable_cores_counts_this_process_cpus() -> None:
    assert 1 <= usable_cores() <= 4096
