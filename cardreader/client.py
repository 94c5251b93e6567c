"""HTTP client for the card-job protocol (docs/job-protocol.md)."""

from __future__ import annotations

from typing import Any

import requests

from cardreader.jobs import Binding, Job

USER_AGENT = "anjuka-cardreader/0.1"


class ServerError(Exception):
    """The server did not do what was asked."""


class ServerUnavailable(ServerError):
    """Unreachable, timed out, or a 5xx/429: worth retrying later."""


class ServerRejected(ServerError):
    """A 4xx answer: retrying the same request will not help."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"HTTP {status} {code}: {message}")


class Unauthorized(ServerRejected):
    """401: the reader's token is missing, wrong or expired."""


class JobClient:
    """The daemon's side of the job protocol, authenticated as one reader."""

    def __init__(
        self,
        server: str,
        token: str,
        reader_id: int | str | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        holder: str | None = None,
        run: str | None = None,
    ) -> None:
        self.base = server.rstrip("/") + "/api/v1"
        self.reader_id = reader_id
        #: Stable name of this daemon (kept across restarts), so a held job
        #: comes back to it and not to another daemon on the same reader.
        self.holder = holder
        #: This run of the daemon (new at each start), named in its long polls,
        #: so that :meth:`release` can end a poll still open on the server.
        self.run = run
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT})

    def _request(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        try:
            response = self.session.request(
                method, self.base + path, timeout=timeout or self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ServerUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        status = response.status_code
        if status == 204:
            return None
        if status in (408, 429) or status >= 500:
            raise ServerUnavailable(f"{method} {path}: HTTP {status}")
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            if status < 400:
                raise ServerUnavailable(f"{method} {path}: answer is not JSON") from None
        if status >= 400:
            code = body.get("error", "") if isinstance(body, dict) else ""
            message = body.get("message", "") if isinstance(body, dict) else ""
            cls = Unauthorized if status == 401 else ServerRejected
            raise cls(status, str(code), str(message))
        return body

    def _holder(self) -> dict[str, str]:
        return {"holder": self.holder} if self.holder else {}

    def whoami(self) -> dict[str, Any]:
        """``GET /readers/me``: this reader's id and name."""
        body: dict[str, Any] = self._request("GET", "/readers/me")
        return body

    def next_job(self, wait: int) -> Job | None:
        """Long-poll for the next job; None when none came within ``wait`` seconds."""
        run = {"run": self.run} if self.run else {}
        body = self._request(
            "GET",
            f"/readers/{self.reader_id}/jobs/next",
            params={"wait": wait, **self._holder(), **run},
            timeout=wait + self.timeout,
        )
        return None if body is None else Job.from_json(body)

    def release(self, timeout: float | None = None) -> list[int]:
        """Hand back the jobs this daemon claimed but has not begun, and end its polls.

        Returns the ids of the jobs handed back.
        """
        body = self._request(
            "POST",
            f"/readers/{self.reader_id}/jobs/release",
            params=self._holder(),
            json={"run": self.run} if self.run else {},
            timeout=timeout,
        )
        return [int(job_id) for job_id in (body or {}).get("released", [])]

    def post_uid(
        self, job_id: int, uid: str, card_type: str, attempt: int | None = None
    ) -> Binding:
        """Bind the job to a card; returns the record signed for it and the keys.

        ``attempt`` is the attempt the job came with: the server refuses a UID
        sent for an attempt that is over (``stale_attempt``).
        """
        report: dict[str, Any] = {"uid": uid, "card_type": card_type}
        if attempt is not None:
            report["attempt"] = attempt
        return Binding.from_json(
            self._request(
                "POST",
                f"/readers/{self.reader_id}/jobs/{job_id}/uid",
                params=self._holder(),
                json=report,
            )
        )

    def post_result(self, job_id: int, result: dict[str, Any]) -> Any:
        """Report a job's outcome (with the ``attempt`` it belongs to, when known)."""
        return self._request(
            "POST",
            f"/readers/{self.reader_id}/jobs/{job_id}/result",
            params=self._holder(),
            json=result,
        )
