"""The database cannot be reached: said once, in words a person can act on.

Kept free of SQLAlchemy and the drivers, so the CLI can recognise the error without
importing them (its start-up time is counted).
"""

from __future__ import annotations

import re

# a password in the URL's user info, or as a `password=` parameter (libpq takes both)
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_PASSWORD_PARAMETER = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def _hidden(text: str) -> str:
    return _PASSWORD_PARAMETER.sub(r"\1***", _PASSWORD.sub(r"\1***@", text))


class DatabaseUnreachable(Exception):
    """Opening a connection to the configured database failed: the server is down or
    elsewhere, the credentials or database name are wrong, or a SQLite file's folder is
    missing. Nothing was read or written."""

    def __init__(self, url: str, error: BaseException) -> None:
        self.url = _hidden(url)
        cause = getattr(error, "orig", None) or error  # the driver's own words
        self.reason = _hidden(" ".join(str(cause).split())) or type(cause).__name__
        if self.url.startswith("sqlite"):
            fix = "check that its folder exists and can be written (DATABASE_URL)"
        else:
            fix = ("check that the server is running and that DATABASE_URL names it: host, "
                   "port, user, password, database")
        super().__init__(f"cannot open the database {self.url}: {self.reason}; {fix}")
