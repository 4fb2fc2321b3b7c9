"""A minimal OpenLineage HTTP receiver for tests: collects the JSON events POSTed to it on 127.0.0.1.

It answers every ``POST`` with ``200`` (like Marquez's ``/api/v1/lineage``) and keeps each request's path,
headers and decoded JSON body.

>>> receiver = LineageReceiver().start()        # doctest: +SKIP
>>> receiver.url                                # doctest: +SKIP
'http://127.0.0.1:40123'
>>> receiver.stop()                             # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from codeanatomy_assets_tests.http_receiver import LoopbackReceiver


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class LineageReceiver(LoopbackReceiver):
    """An HTTP endpoint on ``127.0.0.1`` (free port) collecting OpenLineage events in memory."""

    thread_name = "lineage-receiver"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ReceivedRequest] = []

    @property
    def url(self) -> str:
        """The base URL (``OPENLINEAGE_URL``)."""
        return self.base_url

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.requests]

    def _handle(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        with self._lock:
            self.requests.append(ReceivedRequest(path=path, headers=headers, body=body))
        return 200, b"", None
