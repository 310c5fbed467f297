import os
import secrets

from ytmaker_dev.ports import exempt_loopback_from_proxies

pytest_plugins = ["tests.support.kafka", "tests.support.postgres", "tests.support.s3"]

# The service credential of every service the tests start, in process or as a subprocess
# (they inherit the environment): the progress service's internal API requires it.
os.environ.setdefault("YTMAKER_INTERNAL_TOKEN", secrets.token_urlsafe(32))
# On a machine behind a proxy, the tests' calls to what they started here go straight.
exempt_loopback_from_proxies(os.environ)
