"""Secrets in source files: ``${env:NAME}`` is replaced by the environment variable.

Workspace files are committed to version control; passwords and tokens stay out of them.
They are resolved when a source starts, not when the workspace loads, so that validating
a workspace does not need them.
"""

from __future__ import annotations

import os
import re

from tagloop.errors import ValidationFailed

_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_secrets(text: str, where: str) -> str:
    """``text`` with every ``${env:NAME}`` replaced.

    >>> os.environ["TAGLOOP_DOC_PW"] = "s3cret"
    >>> resolve_secrets("postgresql://etl:${env:TAGLOOP_DOC_PW}@db/mes", "url")
    'postgresql://etl:s3cret@db/mes'
    >>> resolve_secrets("${env:TAGLOOP_DOC_MISSING}", "source crm: auth")
    Traceback (most recent call last):
    ...
    tagloop.errors.ValidationFailed: source crm: auth: environment variable \
TAGLOOP_DOC_MISSING is not set
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ValidationFailed(f"{where}: environment variable {name} is not set")
        return found

    return _REFERENCE.sub(value, text)
