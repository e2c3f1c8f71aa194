"""A background sampler for lab tests: what a test watches while a playbook runs."""
import threading
import time


class Sampler:
    """Calls ``self.sample()`` every ``interval`` seconds in a thread, inside a ``with`` block; subclasses
    keep what they see."""

    def __init__(self, interval):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        raise NotImplementedError

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)
