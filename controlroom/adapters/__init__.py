"""Adapters: each module talks to one outside thing (PostgreSQL, Firestore, Cloud Tasks,
Socket.IO through Redis, Helix, S3, the identity provider's keys)."""
