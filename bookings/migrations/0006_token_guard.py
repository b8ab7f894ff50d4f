from django.db import migrations

# The token rule of a new booking, checked inside the statement string that writes it
# (bookings/rawsql.py): one round trip less per booking than a separate SELECT, and the check
# runs in the write's own transaction. Raised as an exclusion violation naming
# booking_token_no_overlap, which the engine turns into SlotUnavailable (token_overlap).
GUARD = """
CREATE FUNCTION bookings_token_guard(lo timestamptz, hi timestamptz, uids text[],
                                     countries text[]) RETURNS void AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM bookings_bookingtoken t
         WHERE t.blocking
           AND t.period && tstzrange(lo, hi, '[)')
           AND (t.uid, t.country_code) IN (SELECT * FROM unnest(uids, countries))
    ) THEN
        RAISE EXCEPTION 'A token of this booking already holds a booking at that time.'
            USING ERRCODE = 'exclusion_violation', CONSTRAINT = 'booking_token_no_overlap';
    END IF;
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0005_token_period_copy"),
    ]

    operations = [
        migrations.RunSQL(
            sql=GUARD,
            reverse_sql="DROP FUNCTION bookings_token_guard(timestamptz, timestamptz, text[], text[]);",
        ),
    ]
