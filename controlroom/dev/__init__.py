"""Development tooling (CLI, Twitch stand-in, seed, development keys, database bootstrap, build,
the local stack): never imported by a deployable, never shipped in a bundle."""
