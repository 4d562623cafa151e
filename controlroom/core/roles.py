"""Roles and claims: who a dashboard user is, and what each role may do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from controlroom.errors import ForbiddenError

# The one list of roles: the Literal is what types and the API schema see, ROLES its values in
# order (each role can do what those before it can).
Role = Literal["viewer", "operator", "admin", "owner"]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True)
class Claims:
    subject: str
    company_id: uuid.UUID
    role: str
    expires_at: datetime


def role_at_least(role: str, minimum: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(minimum)


@dataclass(frozen=True)
class Caller:
    """An authenticated member acting within their company, with their current role."""

    company: uuid.UUID
    user_id: uuid.UUID
    subject: str
    role: str

    def require(self, minimum: str) -> None:
        if not role_at_least(self.role, minimum):
            raise ForbiddenError(f"needs the {minimum} role")
