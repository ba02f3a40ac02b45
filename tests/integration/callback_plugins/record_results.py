# Copyright: rocket developers
# Apache License 2.0 (see the collection's galaxy.yml)
"""An Ansible callback for tests: every task result as one JSON line in the file $ROCKET_TEST_RESULTS.

test_modules.py enables it next to the default output, so a test reads what each module returned
(changed, diff, image IDs, msg) rather than parsing the human-readable output.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: record_results
type: notification
short_description: write every task result as a JSON line to $ROCKET_TEST_RESULTS (tests only)
description:
  - Used by rocket's tests/integration/test_modules.py.
"""


class CallbackModule(CallbackBase):
    """Appends {"task", "host", "status", "result"} per task result."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        entry = {"task": result.task_name, "host": result._host.get_name(), "status": status, "result": result.result}
        with open(os.environ["ROCKET_TEST_RESULTS"], "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry, default=str, sort_keys=True) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")
