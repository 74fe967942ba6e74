"""Reads by id list as SQL written once per process, rows converted as the ORM converts them.

A reconnect storm resumes its clients in batches, and once the first rush is over a batch holds
a few clients. Through the ORM each batch of replay reads cost about 10 ms before a row was
read, building and compiling its querysets, where PostgreSQL answered all of them in 2: a
10,000-client storm spent two fifths of its time there. ``Select`` builds its statement once;
a read costs its rows.
"""

from functools import partial

from django.db import connection
from django.db.models import Field, IntegerField

from .array_in import in_values


class Select:
    """``SELECT <fields> FROM <model's table> WHERE <key> IN <values> [AND ...] [ORDER BY ..]``.

    Values come back as the ORM gives them: each column through the converters Django's
    compiler would apply (on SQLite booleans are integers and datetimes text until converted;
    on PostgreSQL most columns have none).
    """

    def __init__(self, model, fields, keys, order_by=None):
        self.model = model
        self.names = fields
        self.keys = keys
        self.order_by = order_by
        # (head, [(key column, key type, preparer)], order, converters), at first use
        self._built = None

    def rows(self, *values):
        """Rows whose first key is one of the first list of ``values``, and so on (none when
        a list is empty)."""
        if not all(values):
            return []
        head, keys, order, converters = self._build()
        conditions, params = [], []
        for (column, cast_type, prepare), wanted in zip(keys, values, strict=True):
            wanted = list(wanted) if prepare is None else [prepare(value) for value in wanted]
            condition, more = in_values(column, wanted, cast_type)
            conditions.append(condition)
            params += more
        with connection.cursor() as cursor:
            cursor.execute(f"{head} WHERE {' AND '.join(conditions)}{order}", params)
            rows = cursor.fetchall()
        if not converters:
            return rows
        return [_converted(row, converters) for row in rows]

    def _build(self):
        if self._built is None:
            meta, quote = self.model._meta, connection.ops.quote_name
            table = quote(meta.db_table)

            def column(name):
                return f"{table}.{quote(meta.get_field(name).column)}"

            def preparer(name):
                """How a key's values become parameters: integers as they are; others (a
                UUID is text on SQLite) as the ORM prepares them."""
                field = meta.get_field(name)
                target = field.target_field if field.is_relation else field
                if isinstance(target, IntegerField):
                    return None
                return partial(target.get_db_prep_value, connection=connection)

            fields = [meta.get_field(name) for name in self.names]
            self._built = (
                f"SELECT {', '.join(column(name) for name in self.names)} FROM {table}",
                [
                    (column(key), meta.get_field(key).cast_db_type(connection), preparer(key))
                    for key in self.keys
                ],
                f" ORDER BY {column(self.order_by)}" if self.order_by else "",
                [(i, *found) for i, field in enumerate(fields) if (found := _converters(field))],
            )
        return self._built


def _converters(field: Field):
    """``(converters, column)`` the ORM applies to ``field``'s values, or None."""
    column = field.get_col(field.model._meta.db_table)
    converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
    return (converters, column) if converters else None


def _converted(row, converters):
    row = list(row)
    for i, functions, column in converters:
        value = row[i]
        for convert in functions:
            value = convert(value, column, connection)
        row[i] = value
    return row
