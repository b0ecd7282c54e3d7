"""The crawl turns off Scrapy's per-response check for generator callbacks that `return` a value
(WARN_ON_GENERATOR_RETURN_VALUE: it re-parses the callback's source on every response), so the
check is made here once, over every callback of every spider."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import scrapy
from scrapy.utils.misc import is_generator_with_return_value

import spiders
from spiders.runner import scrapy_settings
from tracker.config import Settings


def spider_callbacks() -> list[tuple[str, object]]:
    found = []
    for info in pkgutil.iter_modules(spiders.__path__):
        module = importlib.import_module(f"spiders.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, scrapy.Spider) and cls.__module__ == module.__name__:
                for name, fn in inspect.getmembers(cls, inspect.isfunction):
                    if name.startswith(("parse", "follow")):
                        found.append((f"{cls.__name__}.{name}", fn))
    return found


def test_no_spider_callback_returns_a_value_from_a_generator() -> None:
    callbacks = spider_callbacks()
    assert len(callbacks) >= 4, callbacks  # parse_source of the base spider and of the regulatory kinds at least
    assert [name for name, fn in callbacks if is_generator_with_return_value(fn)] == []


def test_the_crawl_turns_scrapys_own_check_off() -> None:
    assert scrapy_settings(Settings(database_url="sqlite://"), {}, None)["WARN_ON_GENERATOR_RETURN_VALUE"] is False
