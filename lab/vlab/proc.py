"""Running commands, starting daemons inside hosts, and tracking them by recorded PID.

Processes are identified by (pid, start time) so that a recycled PID is never mistaken
for one of ours, and never by name.
"""
import os
import signal
import subprocess
import time

CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}


class LabError(Exception):
    """A failure with the host and step it happened in: printed as one line."""

    def __init__(self, host, step, detail):
        super().__init__("%s: %s: %s" % (host, step, detail))
        self.host = host
        self.step = step
        self.detail = detail


class GaveUp(LabError):
    """Raised by a wait_for predicate when waiting longer cannot help (the process it waits
    for has exited): wait_for passes it on at once instead of polling until its timeout."""


def run(cmd, host="lab", step=None, check=True, input=None, timeout=120, env=None):
    """Run a command and return CompletedProcess (text). Raise LabError naming host and step."""
    step = step or cmd[0]
    try:
        res = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout,
            env=env or CLEAN_ENV, cwd="/", check=False,
        )
    except subprocess.TimeoutExpired:
        raise LabError(host, step, "timed out after %ss: %s" % (timeout, " ".join(cmd)))
    except FileNotFoundError:
        raise LabError(host, step, "command not found: %s" % cmd[0])
    if check and res.returncode != 0:
        detail = (res.stderr.strip() or res.stdout.strip() or "exit %d" % res.returncode)
        raise LabError(host, step, "%s (%s)" % (detail.splitlines()[-1], " ".join(cmd)))
    return res


def start_time(pid):
    """The kernel's start time of a process (clock ticks since boot), or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = data.rsplit(")", 1)[1].split()
    return int(fields[19])


def identity(pid):
    return [pid, start_time(pid)]


def alive(ident):
    """True when the recorded process still runs (same pid AND same start time) and is not a zombie."""
    if not ident:
        return False
    pid, started = ident
    if started is None or start_time(pid) != started:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop(ident, timeout=10.0, sig=signal.SIGTERM):
    """SIGTERM (or `sig`, e.g. SIGKILL for a power loss), then SIGKILL after timeout, a recorded
    process; returns once it is gone. No-op when it is gone already."""
    if not alive(ident):
        return
    pid = ident[0]
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(ident):
            _reap(pid)
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(cmd, log_path, env=None):
    """Start a detached long-running process; return its identity.

    The command must run in the foreground (not fork and exit), so the Popen pid is the
    process the lab tracks.
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        p = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, env=env or CLEAN_ENV, cwd="/",
        )
    return identity(p.pid)


def run_logged(cmd, who, step, logfile, timeout, env=None):
    """Run a long build step (an image's debootstrap or apt, a compile) with its output appended to
    `logfile`; LabError with the log's last lines if it fails."""
    res = run(["sh", "-c", 'log="$1"; shift; exec "$@" >>"$log" 2>&1', "sh", logfile] + cmd,
              host=who, step=step, check=False, timeout=timeout, env=env)
    if res.returncode != 0:
        with open(logfile, errors="replace") as f:
            tail = f.read().strip().splitlines()[-3:]
        raise LabError(who, step, "failed (exit %d): %s (full log: %s)" % (res.returncode, " | ".join(tail), logfile))


def wait_for(predicate, timeout, what, host, interval=0.2):
    """Poll predicate until it is truthy; LabError naming what we waited for on timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except GaveUp:
            raise
        except Exception as exc:  # the predicate probes a daemon that may not be up yet
            last_error = exc
        time.sleep(interval)
    raise LabError(host, what, "not ready after %ss%s" % (
        timeout, (": %s" % last_error) if last_error else ""))
