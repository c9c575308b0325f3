"""HTTP sessions for the providers that call web APIs: requests with urllib3's retries, backoff and Retry-After."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = (429, 500, 502, 503, 504)


def retrying_session(
    *,
    retries: int,
    backoff: float,
    methods: Collection[str] | None,
    statuses: Collection[int] = RETRY_STATUSES,
    policy: type[Retry] = Retry,
) -> requests.Session:
    """A session that retries `methods` (None: every method) on `statuses` and on connection errors: at once, then
    after 2 x backoff, 4 x backoff ... (urllib3's backoff_factor), or what a Retry-After header asks; `policy` may
    refine which."""
    retry = policy(
        total=retries,
        backoff_factor=backoff,
        status_forcelist=tuple(statuses),
        allowed_methods=None if methods is None else frozenset(m.upper() for m in methods),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def json_object(response: requests.Response) -> dict[str, Any] | None:
    """The answer's body as a JSON object, or None when it is anything else (not JSON, or a list or a string)."""
    try:
        document = response.json()
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
