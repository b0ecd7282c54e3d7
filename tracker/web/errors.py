"""Refusals of the services as HTTP answers, by exception type (the most specific class wins): the one
place refusals become HTTP codes, for the API, the forms and the JSON answers of the pages.

InvalidSpec (what was sent does not validate) is a 422 listing every problem, with the messages a file
sync gives; ManagedElsewhere (the row is managed in its file), a duplicate id and any other Conflict
are 409; NotFound is 404; a note over the limit 413; any other refusal of the workflow is 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import HTTPException
from fastapi.responses import JSONResponse, Response

from tracker.declare.managed import InvalidSpec
from tracker.impacts.workflow import NoteTooLong, NotFound, WorkflowError

HTTP_CODES: dict[type[WorkflowError], int] = {InvalidSpec: 422, NotFound: 404, NoteTooLong: 413, WorkflowError: 409}
T = TypeVar("T")


def http_code(exc: WorkflowError) -> int:
    """The HTTP code of a refusal: its class's, or its nearest base class's."""
    return next(HTTP_CODES[c] for c in type(exc).__mro__ if c in HTTP_CODES)


def refused(exc: WorkflowError) -> HTTPException:
    """A refusal as an HTTPException with its one-line message."""
    return HTTPException(status_code=http_code(exc), detail=str(exc))


def invalid(problems: list[str]) -> Response:
    """The 422 answer to content that does not validate: every problem, one line each."""
    return JSONResponse({"detail": "; ".join(problems), "problems": problems}, status_code=422)


def answer(work: Callable[[], T]) -> T | Response:
    """Run an API mutation: its result, the 422 of an InvalidSpec, or the HTTPException of another refusal."""
    try:
        return work()
    except InvalidSpec as exc:
        return invalid(exc.problems)
    except WorkflowError as exc:
        raise refused(exc) from None


def problems_json(exc: Any) -> list[str]:
    """The problems of an InvalidSpec (or the one message of any other refusal)."""
    return list(getattr(exc, "problems", None) or [str(exc)])
