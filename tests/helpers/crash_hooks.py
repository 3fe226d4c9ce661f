"""A job-finished hook that kills its worker once, between a run's commit and its acknowledgement.

Named in `CIRCLES_JOB_FINISHED_HOOKS` by the exactly-once end-to-end test: a worker runs a
webhook job's script (committing its writes), calls the hooks, then acknowledges the job. This
hook SIGKILLs the worker process the first time it is called (when the file named by
`CIRCLES_TEST_DIE_ONCE_MARKER` does not exist yet), so the job is left pending and delivered
again to the next worker, after its effects were committed.
"""

import os
import signal
from typing import Any


def die_once(job: Any, outcome: dict[str, Any]) -> None:
    """SIGKILL this process the first time (per marker file) a job finishes."""
    marker = os.environ.get("CIRCLES_TEST_DIE_ONCE_MARKER", "")
    if not marker or os.path.exists(marker):
        return
    with open(marker, "w") as f:
        f.write(job.run_id)
    os.kill(os.getpid(), signal.SIGKILL)
