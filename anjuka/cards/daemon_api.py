"""The desk daemon's side of the job protocol (docs/job-protocol.md).

Callers authenticate as a reader; a reader reaches only its own id and its
own jobs (404 otherwise).
"""

from __future__ import annotations

import time

from flask import Response
from flask_smorest import Blueprint

from anjuka.cards import jobs
from anjuka.cards.permissions import own_job_or_404, own_reader
from anjuka.cards.readers import touch
from anjuka.cards.schemas import (
    DaemonJobSchema,
    HolderQuerySchema,
    JobSchema,
    PollQuerySchema,
    ReaderMeSchema,
    ReleasedSchema,
    ReleaseSchema,
    ResultReportSchema,
    UidAnswerSchema,
    UidReportSchema,
)
from anjuka.core.security import require_identity, requires_reader
from anjuka.core.transactions import checkpoint

blp = Blueprint("card_jobs", __name__, description="Card jobs for desk readers (the daemon)")


@blp.route("/readers/me", methods=["GET"])
@blp.response(200, ReaderMeSchema)
@requires_reader
def whoami():
    """The reader this token belongs to."""
    return require_identity().subject


@blp.route("/readers/<int:reader_id>/jobs/next", methods=["GET"])
@blp.arguments(PollQuerySchema, location="query")
@blp.response(200, DaemonJobSchema)
@blp.alt_response(204, description="no job arrived within `wait` seconds")
@requires_reader
def next_job(query: dict, reader_id: int):
    """Long poll: the next job of this reader, leased to the caller; 204 when none came."""
    own_reader(reader_id)
    wait = min(query["wait"], jobs.MAX_WAIT)
    deadline = time.monotonic() + wait
    holder, run = query.get("holder"), query.get("run")
    touch(reader_id)
    if run is not None:
        jobs.register_run(reader_id, holder)
    # A long poll is a round of short transactions, never one held for its whole wait.
    checkpoint()
    while True:
        if run is not None and jobs.run_is_over(reader_id, holder, run):
            return Response(status=204)  # the daemon is stopping: claim nothing for it
        job = jobs.claim_next(reader_id, holder)
        if job is not None:
            return job
        # Kept, not rolled back: lapsed jobs failed on the way stay failed.
        checkpoint()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Response(status=204)
        time.sleep(min(jobs.POLL_INTERVAL, remaining))


@blp.route("/readers/<int:reader_id>/jobs/release", methods=["POST"])
@blp.arguments(ReleaseSchema)
@blp.arguments(HolderQuerySchema, location="query")
@blp.response(200, ReleasedSchema)
@requires_reader
def release_jobs(body: dict, query: dict, reader_id: int):
    """A stopping daemon hands back the jobs it holds but has not begun; its polls end."""
    own_reader(reader_id)
    released = jobs.release_jobs(reader_id, query.get("holder"), body.get("run"))
    return {"released": released}


@blp.route("/readers/<int:reader_id>/jobs/<int:job_id>/uid", methods=["POST"])
@blp.arguments(UidReportSchema)
@blp.arguments(HolderQuerySchema, location="query")
@blp.response(200, UidAnswerSchema)
@requires_reader
def report_uid(body: dict, query: dict, reader_id: int, job_id: int):
    """Phase one: the chip's UID; the answer is the record signed for it and the keys."""
    job = jobs.lock_job(own_job_or_404(reader_id, job_id))
    return jobs.bind_uid(
        job,
        body["uid"],
        body["card_type"],
        holder=query.get("holder"),
        attempt=body.get("attempt"),
    )


@blp.route("/readers/<int:reader_id>/jobs/<int:job_id>/result", methods=["POST"])
@blp.arguments(ResultReportSchema)
@blp.arguments(HolderQuerySchema, location="query")
@blp.response(200, JobSchema)
@requires_reader
def report_result(body: dict, query: dict, reader_id: int, job_id: int):
    """Phase two: what happened on the card; a card becomes active only on a verified write."""
    job = jobs.lock_job(own_job_or_404(reader_id, job_id))
    return jobs.report_result(job, body, holder=query.get("holder"))
