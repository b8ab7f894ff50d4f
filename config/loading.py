"""Model instances from hand-written SQL, for the paths every screen, API call and booking runs.

On this project's hardware the ORM spends ~1-1.5 ms compiling each query and more running
`prefetch_related` per parent, while PostgreSQL answers in ~0.2 ms. So the availability path
(a location with its rules; its EVSEs with charge point, policy and connectors), the booking
write path (bookings/rawsql.py) and the OCPI token lookup load rows with constant SQL and build
ordinary model instances with `Model.from_db`, the constructor the ORM uses, through the same
field converters. Related objects are put where `select_related` and `prefetch_related` would
put them, so callers cannot tell the difference: `evse.charge_point`, `evse.booking_policy`,
`evse.connectors.all()`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init


@functools.cache
def columns(model: type[Model], alias: str) -> str:
    """The SELECT list of the model's concrete fields, qualified by a table alias."""
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


@functools.cache
def _converters(model: type[Model]) -> tuple[tuple[str, ...], tuple]:
    """(attnames, [(index, [converter, ...], expression)]) as the SQL compiler would apply."""
    fields = model._meta.concrete_fields
    converters = []
    for i, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
        if found:
            converters.append((i, found, col))
    return tuple(f.attname for f in fields), tuple(converters)


def width(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


def build(model: type[Model], values: Sequence[Any]) -> Model:
    """One instance from the values of `columns(model, ...)`, in that order.

    What `Model.from_db` makes of a full row (`cls(*values)`, then the state of a loaded row),
    without `Model.__init__`'s per-field setattr and its pre_init/post_init signals: a third of
    the cost of building a location's ~200 model instances for availability. A model whose
    init signals have listeners goes through `from_db`.
    """
    attnames, converters = _converters(model)
    if converters:
        values = list(values)
        for i, found, col in converters:
            for convert in found:
                values[i] = convert(values[i], col, connection)
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(DEFAULT_DB_ALIAS, attnames, values)
    instance = model.__new__(model)
    instance.__dict__.update(zip(attnames, values, strict=True))
    state = instance._state = ModelState()
    state.adding = False
    state.db = DEFAULT_DB_ALIAS
    return instance


def build_at(model: type[Model], row: Sequence[Any], start: int) -> Model | None:
    """The instance whose columns start at `start` in a joined row; None for an outer join's
    missing row (its primary key is NULL)."""
    values = row[start : start + width(model)]
    if values[0] is None:
        return None
    return build(model, values)


def set_related(instance: Model, descriptor: Any, value: Model | None) -> None:
    """Cache a forward FK (`Model.fk`) or reverse one-to-one (`Model.reverse_one`) the way
    select_related does; None on a reverse one-to-one means "there is none"."""
    holder = descriptor.related if hasattr(descriptor, "related") else descriptor.field
    holder.set_cached_value(instance, value)


def set_prefetched(instance: Model, accessor: str, children: Iterable[Model]) -> None:
    """Fill `instance.<accessor>.all()` (a reverse foreign key) the way prefetch_related does,
    in the order given.

    The cached queryset is what the related manager would build (`_apply_rel_filters`: the
    filter on the parent kept deferred, the parent known to its children), made without the
    manager's queryset clone, which costs ten times more here. A `.filter()` on it still
    queries only this parent's children.
    """
    field = getattr(type(instance), accessor).field
    queryset = field.model._default_manager.get_queryset()
    queryset._add_hints(instance=instance)
    queryset._deferred_filter = (False, (), {field.name: instance})
    queryset._known_related_objects = {field: {instance.pk: instance}}
    queryset._result_cache = list(children)
    queryset._prefetch_done = True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[field.remote_field.cache_name] = queryset
