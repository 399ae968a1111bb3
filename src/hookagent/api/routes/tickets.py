"""``POST /auth/ticket``: a single-use ticket that opens one log stream from a browser."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from hookagent.api.deps import PrincipalDep, StoreDep

router = APIRouter(prefix="/auth", tags=["auth"])


class Ticket(BaseModel):
    """A ticket for ``?ticket=`` on ``/logs/stream`` or ``/logs/ws``; it works once."""

    ticket: str
    expires_in: int


@router.post("/ticket")
async def issue_ticket(principal: PrincipalDep, store: StoreDep, response: Response) -> Ticket:
    """A ticket standing for the caller's token on one stream request, for the next 30 s."""
    ticket = await store.tickets.issue(role=principal.role.value, name=principal.name)
    response.headers["Cache-Control"] = "no-store"
    return Ticket(ticket=ticket, expires_in=store.tickets.ttl_seconds)
