"""People as sign-in knows them, before and across companies."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    """Who signed in: the identity provider's issuer and `sub`, with what it says of them."""

    issuer: str
    subject: str
    email: str | None = None
    email_verified: bool = False
    display_name: str | None = None

    @property
    def verified_email(self) -> str | None:
        """The email in lower case when the provider vouches for it, else None."""
        return self.email.strip().lower() if self.email and self.email_verified else None


@dataclass(frozen=True)
class PlatformCaller:
    """A platform operator acting on companies (not a member acting within one)."""

    subject: str
    email: str
