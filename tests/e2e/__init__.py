"""End-to-end tests: the `tracker` CLI and service as subprocesses, the browser, mypy."""
