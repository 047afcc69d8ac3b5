"""Project-wide pytest configuration. Fixture modules are registered here."""
pytest_plugins = ["tests.fixtures.sshd"]
