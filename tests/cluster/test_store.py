"""The store's own tests, run again against a real Valkey Cluster."""

from __future__ import annotations

import pytest

from tests.store.test_effects import *  # noqa: F403
from tests.store.test_search import *  # noqa: F403
from tests.store.test_tasks import *  # noqa: F403

pytestmark = pytest.mark.cluster
