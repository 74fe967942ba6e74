"""A clock the test moves by hand, for code that takes ``clock=`` (time.monotonic's shape)."""


class ManualClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now
