"""Who a list entry's restriction reaches when a court, not the registry, moves it.

Fa Fa [2019] No. 35, item 17(2): when an entity's legal representative changes
after the entity was restricted, the former one stays restricted until the
enforcing court approves their application, and only then is the new one
restricted. A relation declared with ``transferred_by`` therefore reaches, for
each list entry of an organization:

- the person who held the role when the entry started (the relation's tenure
  that contains ``start_at``), from the start until the first transfer record
  of the same organization and key;
- the ``person_id`` of each transfer record (type ``transferred_by``, same
  organization, same key, not revoked), from its occurrence until the next one;

each cut to the entry's own interval. A later change of the role in the
registry alone moves nothing. Grade consequences, which have no case, follow
the role's tenure as before (``consequences``).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from xinyong.engine.scope import Ledger, attr, not_revoked
from xinyong.packs.schema import RelationUse


def transfers(relation: RelationUse, key: str | None, led: Ledger) -> ir.Table:
    """_torg, _tkey, _tperson, _tfrom, _tuntil (the next transfer of the same org and key)."""
    assert relation.transferred_by is not None
    t = not_revoked(led, led.records.filter(led.records.type == relation.transferred_by))
    tkey = attr(t, key).cast("string") if key else ibis.null("string")
    t = t.select(
        _torg=t.subject_id,
        _tkey=tkey,
        _tperson=attr(t, "person_id").cast("string"),
        _tfrom=t.occurred_at,
        _trid=t.record_id,
    )
    w = ibis.window(group_by=[t._torg, t._tkey], order_by=[t._tfrom, t._trid])
    t = t.mutate(_tuntil=t._tfrom.lead().over(w))
    return t.filter(t._tperson.notnull()).drop("_trid")


def holders(base: ir.Table, reps: ir.Table, moves: ir.Table) -> ir.Table:
    """``base`` (list consequences of organizations: _sid, _ekey, since, until) joined
    to the persons holding each one's restriction: adds _person, _from, _until."""
    first = moves.group_by(["_torg", "_tkey"]).aggregate(_first=moves._tfrom.min())
    initial = base.join(
        reps,
        [
            base._sid == reps._org,
            reps._from <= base.since,
            reps._until.isnull() | (reps._until > base.since),
        ],
    )
    initial = initial.left_join(
        first, [initial._sid == first._torg, initial._ekey.identical_to(first._tkey)]
    )
    initial = initial.mutate(_hfrom=initial.since, _huntil=initial._first)
    initial = initial.drop("_org", "_from", "_until", "_rid", "_torg", "_tkey", "_first")
    moved = base.join(moves, [base._sid == moves._torg, base._ekey.identical_to(moves._tkey)])
    moved = moved.mutate(_person=moved._tperson, _hfrom=moved._tfrom, _huntil=moved._tuntil)
    moved = moved.drop("_torg", "_tkey", "_tperson", "_tfrom", "_tuntil")
    out = initial.union(moved.select(*initial.columns), distinct=False)
    return out.rename(_from="_hfrom", _until="_huntil")
