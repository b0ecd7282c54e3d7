"""The self-contained demo: a local policy site serving the bundled sample."""
