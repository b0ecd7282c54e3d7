"""Package discovery: every tracker.* and spiders.* package, plus ./templates as tracker.templates."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tracker", "tracker.*", "spiders", "spiders.*"]), "tracker.templates"],
    package_dir={"tracker.templates": "templates"},
)
