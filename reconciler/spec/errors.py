"""Spec errors that point at a file, line, column and field, with a hint for the fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class SpecError:
    """One problem in a spec file, printed as `file:line:col: field: message` (+ hint)."""

    file: str
    line: int  # 1-based; 0 when the problem is the file as a whole
    column: int  # 1-based; 0 when unknown
    field: str  # dotted path like "profiles.ops.port", "" for the document
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class SpecInvalid(Exception):
    """Raised by load_spec with every error found (never just the first)."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = sorted(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
