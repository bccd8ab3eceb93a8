"""The package's source lives in server/ and installs as `certbound` (SPEC §2): a user's own `server`
package or server.py never collides with it. pyproject.toml holds everything else."""

from setuptools import find_packages, setup

setup(
    package_dir={"certbound": "server"},
    packages=["certbound", *(f"certbound.{name}" for name in find_packages("server"))],
    package_data={"certbound": ["py.typed"]},
)
