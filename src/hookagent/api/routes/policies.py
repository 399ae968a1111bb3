"""``GET /policies``: the approval policy in force for each repository the file names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from hookagent.api.deps import PoliciesDep

router = APIRouter(prefix="/policies", tags=["policies"])


class PolicyView(BaseModel):
    """The default policy, each repository's effective policy, and where they came from."""

    default: dict[str, Any]
    repos: dict[str, dict[str, Any]]
    file: str | None
    loaded_at: str | None


@router.get("")
async def list_policies(policies: PoliciesDep) -> PolicyView:
    """Effective policies (a repository's table merged over ``[default]``), as last loaded."""
    return PolicyView.model_validate(policies.current().view())
