"""Run one of our modules on one host in-process, through pytest-ansible's `ansible_adhoc`
fixture (issue 19), and return the result dict that lab/vlab/control.py run_module returns.

run_module starts the `ansible` ad hoc command and reads its result from the JSON that the
ansible.posix.json callback prints. pytest-ansible runs the same one-task play through Ansible's
Python API (InventoryManager + TaskQueueManager) inside the pytest process and collects each
host's result with a callback object: no `ansible` subprocess and no parsing of stdout.

What pytest-ansible 26.10 does not do on its own, and this module adds:

* check mode: its `--check` option is never passed to the play, so the dispatcher below sets
  the play keyword `check_mode` (what `ansible --check` does through the CLI arguments);
  it also writes the task as `action: <module>` with `args:` (ansible-core 2.19 deprecates
  the mapping form pytest-ansible writes);
* a time limit: run_module's subprocess has one (900 s); here the task keyword `timeout` ends
  the task in Ansible's worker, and an expired task raises instead of returning a result;
* an unreachable host: pytest-ansible raises AnsibleConnectionFailure; the host's result is
  returned instead, as run_module does (`unreachable: true` in it).

A failed module comes back as a dict with `failed: true` (pytest-ansible does not raise), as
with run_module. The result gets the `action` key the JSON callback adds, and is turned into
plain dict/list/str values with Ansible's JSON encoder, which is what run_module's callers got
(Ansible 2.19 hands callbacks its own tagged str/dict subclasses).

pytest-ansible 26.10 marks the host manager `ansible_adhoc` returns as deprecated (a
DeprecationWarning per run), and `_build_play_ds`, overridden below, is one of its private
helpers (the version is pinned in requirements-dev.txt): tests/unit/test_inprocess_module_run.py
fails if check mode stops reaching the task.

Main thread only: Ansible's TaskQueueManager installs signal handlers, which Python allows in
the main thread only (ValueError in a worker thread), and Ansible's CLI arguments and plugin
loaders are process-wide. Runs from a thread pool (side by side, or in the background while the
test polls) stay on run_module, a subprocess each.
"""
import json
import threading

from ansible.module_utils.common.json import AnsibleJSONEncoder
from pytest_ansible.errors import AnsibleConnectionFailure
from pytest_ansible.module_dispatcher.v213 import ModuleDispatcherV213

COLLECTION = "kvmops.migration"


class TaskKeywordDispatcher(ModuleDispatcherV213):
    """pytest-ansible's dispatcher, with check mode and a timeout on the one task it runs."""

    def _build_play_ds(self, complex_args):
        play = super()._build_play_ds(complex_args)
        play["check_mode"] = bool(self.options.get("check_mode"))
        # `action: <name>` with `args:`, as `ansible -m` builds it (ansible-core 2.19 deprecates
        # the mapping form `action: {module: ..., args: ...}` that pytest-ansible writes).
        task = {"action": self.options["module_name"], "args": complex_args}
        if self.options.get("task_timeout"):
            task["timeout"] = int(self.options["task_timeout"])
        play["tasks"] = [task]
        return play


def run_in_process(ansible_adhoc, inventory, host, module, args, check_mode=False, timeout=900):
    """Run `module` (short name: one of ours; or a fully qualified name) on `host` of `inventory`
    with `args`; return that host's result dict (failed results too)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("in-process module runs work in the main thread only; use run_module in threads")
    fqcn = module if "." in module else "%s.%s" % (COLLECTION, module)
    hosts = ansible_adhoc(inventory=inventory, host_pattern=host, check_mode=check_mode, task_timeout=timeout)
    if host not in hosts:
        raise AssertionError("host %s is not in the inventory %s" % (host, inventory))
    dispatcher = TaskKeywordDispatcher(**dict(hosts.options, host_pattern=host))
    try:
        results = getattr(dispatcher, fqcn)(**args).contacted
    except AnsibleConnectionFailure as exc:
        results = {name: dict(res, unreachable=True) for name, res in (exc.dark or {}).items()}
    if host not in results:  # a skipped task: pytest-ansible's callback records none
        raise AssertionError("no result from %s on %s (skipped?)" % (fqcn, host))
    result = dict(results[host], action=fqcn)
    if isinstance(result.get("timedout"), dict):
        raise AssertionError("%s on %s exceeded its %s s timeout: %s" % (fqcn, host, timeout, result.get("msg")))
    return json.loads(json.dumps(result, cls=AnsibleJSONEncoder))
