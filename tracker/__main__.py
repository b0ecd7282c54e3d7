"""`python -m tracker` is the `tracker` command (`run` is the program's entry point)."""

import tracker


def run() -> None:
    """The `tracker` program: registers only the invoked command's module, then runs the CLI."""
    tracker.COMMANDS_ON_DEMAND = True  # read by tracker.cli as it is imported (see its docstring)
    from tracker.cli import main

    main()


if __name__ == "__main__":  # not when a worker process imports it (multiprocessing's spawn)
    run()
