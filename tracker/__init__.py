"""Policy and regulation change tracker."""

__version__ = "0.1.0"

# Set by the `tracker` program (tracker.__main__.run) before it imports tracker.cli: register only the
# invoked command's module. False for everything else that imports the CLI (tests, the docs generator).
COMMANDS_ON_DEMAND = False
