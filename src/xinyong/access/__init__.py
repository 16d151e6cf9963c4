"""Who may see what: principals, the permission matrix and the operations layer
(``xinyong.access.operations``) that every interface calls."""

from xinyong.access.permissions import ACTIONS, PERMISSIONS, ROLES, Refused, authorize
from xinyong.access.principals import Principal, PrincipalBook, local_operator

__all__ = [
    "ACTIONS",
    "PERMISSIONS",
    "ROLES",
    "Principal",
    "PrincipalBook",
    "Refused",
    "authorize",
    "local_operator",
]
