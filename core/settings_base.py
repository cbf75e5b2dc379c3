"""The base of every settings section, and the bilingual Label (used by core/settings*.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(_Section):
    """A user-facing text in Vietnamese first, English second."""

    vi: str
    en: str

    def get(self, lang: str) -> str:
        return self.vi if lang == "vi" else self.en
