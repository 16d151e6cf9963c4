"""Rule packs: the schema, loader, linter and the condition language."""

from xinyong.packs.loader import (
    PackError,
    install_pack,
    installed_packs,
    load_pack,
    shipped_pack_paths,
)
from xinyong.packs.schema import Pack

__all__ = [
    "Pack",
    "PackError",
    "install_pack",
    "installed_packs",
    "load_pack",
    "shipped_pack_paths",
]
