"""Where the package's data lives, in a source checkout and in an installed package alike."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def templates_dir() -> Path:
    """The Jinja templates: ./templates in a checkout, tracker/templates once installed."""
    here = _CHECKOUT / "templates"
    if here.is_dir() and (_CHECKOUT / "pyproject.toml").is_file():
        return here
    return Path(str(resources.files("tracker") / "templates"))


def demo_data_dir() -> Path:
    """The bundled demo sample (policy versions, sources and SOP files)."""
    return Path(str(resources.files("tracker") / "demo" / "data"))
