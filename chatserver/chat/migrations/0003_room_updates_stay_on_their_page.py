"""Drop the index on Room.last_event_at.

Every stored message updates its room's last_seq and last_event_at. With last_event_at indexed,
PostgreSQL could never make that a HOT update (a new row version on the same page, no new index
entries): each message left a dead row version and an entry in each of the room table's
indexes, and a busy room's updates slowed down as they piled up until autovacuum came by. No
query reads rooms in last_event_at order across users (the room list sorts one user's
memberships), so the index bought nothing.
"""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0002_rooms_messages_events"),
    ]

    operations = [
        migrations.AlterField(
            model_name="room",
            name="last_event_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
    ]
