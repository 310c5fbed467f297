pytest_plugins = ["tests.support.kafka"]
