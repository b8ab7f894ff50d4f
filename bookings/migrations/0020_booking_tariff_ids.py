"""A booking names the tariffs in force at its EVSE when it was made or moved (OCPI
Booking.tariff_id), stored with it like its accepted terms. Bookings made before get the tariffs
in force now: the EVSE's own, else its location's."""

import django.contrib.postgres.fields
from django.db import migrations, models

FILL = """
UPDATE bookings_booking b
   SET tariff_ids = coalesce(
       (SELECT array_agg(t.ocpi_id ORDER BY upper(t.ocpi_id)) FROM locations_tariff t
          JOIN locations_tariff_evses te ON te.tariff_id = t.id WHERE te.evse_id = b.evse_id),
       (SELECT array_agg(t.ocpi_id ORDER BY upper(t.ocpi_id)) FROM locations_tariff t
          JOIN locations_tariff_locations tl ON tl.tariff_id = t.id
         WHERE tl.location_id = b.location_id),
       '{}')
 WHERE EXISTS (SELECT 1 FROM locations_tariff_evses te WHERE te.evse_id = b.evse_id)
    OR EXISTS (SELECT 1 FROM locations_tariff_locations tl WHERE tl.location_id = b.location_id)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0019_charger_reservation_resend"),
        ("locations", "0005_tariff_tax_rate_known"),
    ]

    operations = [
        migrations.AddField(
            model_name="booking",
            name="tariff_ids",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=36),
                blank=True,
                default=list,
                help_text="The tariffs in force at its EVSE when it was booked or moved (OCPI ids).",
                size=None,
            ),
        ),
        migrations.RunSQL(FILL, reverse_sql=migrations.RunSQL.noop),
    ]
