import os
import secrets

pytest_plugins = ["tests.support.kafka", "tests.support.postgres", "tests.support.s3"]

# The service credential of every service the tests start, in process or as a subprocess
# (they inherit the environment): the progress service's internal API requires it.
os.environ.setdefault("YTMAKER_INTERNAL_TOKEN", secrets.token_urlsafe(32))
