"""Static files from the daemon: the collected, pre-compressed copies first, the source after.

``chatserver collectstatic`` (run by ``make run`` and the deployment) writes every file of the
web client and the admin with gzip and Brotli variants into STATIC_ROOT; whitenoise then answers
with the smallest one the browser accepts, with ``Cache-Control`` and an ETag. Plain whitenoise
in DEBUG would look in the apps' source folders first (never compressed); here a file that was
not collected is still found there, so a fresh checkout works before collectstatic.
"""

from django.contrib.staticfiles import finders
from whitenoise.base import WhiteNoise
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    def candidate_paths_for_url(self, url):
        """In autorefresh mode (DEBUG): STATIC_ROOT, then the finders."""
        yield from WhiteNoise.candidate_paths_for_url(self, url)
        if self.use_finders and url.startswith(self.static_prefix):
            path = finders.find(url[len(self.static_prefix) :])
            if path:
                yield path

    def add_files_from_finders(self):
        """At start-up (no autorefresh): source files only where nothing was collected."""
        collected = dict(self.files)
        super().add_files_from_finders()
        self.files.update(collected)
