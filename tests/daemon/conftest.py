"""The end-to-end fixtures (a state directory, a daemon environment with Redis, two users with
tokens), defined with the tests in test_end_to_end.py, shared with the other daemon tests."""

from .test_end_to_end import redis_env, state_dir, users  # noqa: F401
