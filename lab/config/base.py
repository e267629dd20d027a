"""What every config section is built of: strict scalar types and a frozen base model."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Strict,
    StrictBool,
    StrictStr,
    model_validator,
)

__all__ = ["Int", "Float", "Bool", "Str", "Section"]


# Strict-ish scalar types: YAML already produced real ints, floats and bools, so
# "8" for an integer or `true` for a number is a mistake, not something to coerce.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), AllowInfNan(False)]  # accepts ints, never bools or strings
Bool = StrictBool
Str = StrictStr


class Section(BaseModel):
    """Base of every config model: unknown keys are errors and values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_section_is_defaults(cls, data: Any) -> Any:
        # `topology:` with everything below commented out is YAML null.
        return {} if data is None else data
