"""The crash tests use the Slack emulator fixture of the bot tests."""

from tests.bot.conftest import emulator  # noqa: F401  (a fixture)
