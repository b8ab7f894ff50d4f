"""Bookings 1.1 terms carry the minimum and maximum booking duration. New bookings store them
with the rest of their accepted terms (locations.selectors.policy_terms); this gives bookings made
before that the values of the policy now in force on their EVSE (its own, else its location's)."""

from django.db import migrations

FILL = """
UPDATE bookings_booking b
   SET terms = b.terms || jsonb_build_object(
           'min_booking_duration', p.min_duration_minutes,
           'max_booking_duration', p.max_duration_minutes)
  FROM locations_bookingpolicy p
 WHERE p.id = COALESCE(
           (SELECT id FROM locations_bookingpolicy WHERE evse_id = b.evse_id),
           (SELECT id FROM locations_bookingpolicy WHERE location_id = b.location_id))
   AND b.terms <> '{}'::jsonb
   AND NOT b.terms ? 'min_booking_duration'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0014_request_id_cistring_token_type_open_enum"),
        ("locations", "0003_location_ocpi_id_ci_unique"),
    ]

    operations = [migrations.RunSQL(FILL, reverse_sql=migrations.RunSQL.noop)]
