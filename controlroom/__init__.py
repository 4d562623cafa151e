"""Creator Control Room: the shared package every deployable is built from."""
