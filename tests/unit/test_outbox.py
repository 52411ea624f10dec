"""A DeviceWorker's outbox: records keep their order, a job's records go out with its jobs row,
and a stream of short jobs costs one send per job instead of one per record or progress update."""

from farm.scheduler.outbox import Outbox


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _outbox(interval_s: float = 0.25):
    sent: list[tuple[list, dict | None]] = []
    clock = _Clock()
    box = Outbox(lambda batches, progress: sent.append((batches, progress)), interval_s=interval_s, clock=clock)
    return box, sent, clock


def test_a_jobs_row_sends_everything_before_it_in_order_with_the_merged_progress():
    box, sent, _ = _outbox()
    box.progress({"op": "a", "phase": "tune", "trials": 0})
    box.add("trials", [{"i": 0}, {"i": 1}])
    box.progress({"trials": 2})
    box.add("measurements", [{"m": 0}])
    assert sent == []
    box.add("jobs", [{"job": "a"}])
    assert sent == [([("trials", [{"i": 0}, {"i": 1}]), ("measurements", [{"m": 0}]), ("jobs", [{"job": "a"}])],
                     {"op": "a", "phase": "tune", "trials": 2})]


def test_records_of_a_long_job_stream_once_the_interval_has_passed():
    box, sent, clock = _outbox(interval_s=0.25)
    box.add("trials", [{"i": 0}])
    clock.t = 0.3
    box.add("trials", [{"i": 1}])
    assert sent == [([("trials", [{"i": 0}]), ("trials", [{"i": 1}])], None)]
    clock.t = 0.4
    box.progress({"phase": "compare"})
    assert len(sent) == 1  # within the interval: kept for the next send
    box.flush()
    assert sent[-1] == ([], {"phase": "compare"})
    box.flush()
    assert len(sent) == 2  # nothing pending: no call


def test_short_jobs_cost_one_send_each():
    box, sent, clock = _outbox()
    for job in range(10):
        clock.t += 0.1
        box.progress({"op": job, "phase": "tune"})
        for i in range(2):
            box.add("trials", [{"job": job, "i": i}])
            box.progress({"trials": i + 1})
        box.add("measurements", [{"job": job}])
        box.add("jobs", [{"job": job}])
        box.progress({"phase": "done"})
    assert len(sent) == 10
    assert [rows[0]["job"] for batches, _ in sent for table, rows in batches if table == "jobs"] == list(range(10))
