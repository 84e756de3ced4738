"""Key pipe-face tests of tests/test_core_pipe.py again, with the warm process on and already
listening: the README's examples, the multi-stage pipeline and the exit codes must
come out the same when a daemon runs the commands (invalid UTF-8 on stdin: tests/test_warm.py)."""

from __future__ import annotations

import pytest
import test_core_pipe

from aish.warm import protocol


@pytest.fixture
def home(home, warm, server):
    """The fixture's HOME with the warm process on, listening before the test starts."""
    warmed = warm.env(home)
    warm.start({**warmed, "OPENAI_BASE_URL": server.base, "OPENAI_API_KEY": "test-key"})
    yield warmed
    # The commands went through the daemon, not around it.
    assert warm.served() > 0
    assert not protocol.disabled(warmed)


test_issue_examples_against_an_endpoint = test_core_pipe.test_issue_examples_against_an_endpoint
test_multi_stage_pipeline_each_stage_sees_the_earlier_ones = \
    test_core_pipe.test_multi_stage_pipeline_each_stage_sees_the_earlier_ones
test_usage_and_missing_session_exit_codes = \
    test_core_pipe.test_usage_and_missing_session_exit_codes
test_bad_option_values_are_usage_errors = test_core_pipe.test_bad_option_values_are_usage_errors
