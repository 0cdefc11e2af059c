"""pytest configuration of the end-to-end tests: the test library
(tests/dih) and its fixtures. The tests run in the patched libvirt's run
environment: tests/e2e/run.py FILE::TEST puts them there."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dih import environment  # noqa: E402

pytest_plugins = ["dih.fixtures"]


def pytest_configure(config):
    if not config.option.collectonly and \
            not environment.in_libvirt_build_environment():
        pytest.exit(f"the end-to-end tests need the patched libvirt's run "
                    f"environment: run them with {__file__.rsplit('/', 1)[0]}"
                    f"/run.py FILE::TEST, or through {environment.LIBVIRT_RUN}",
                    returncode=2)
