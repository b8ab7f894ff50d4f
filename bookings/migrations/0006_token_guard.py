from django.db import migrations

# The token rule of a new booking, checked inside the statement string that writes it
# (bookings/rawsql.py): one round trip less per booking than a separate SELECT, and the check
# runs in the write's own transaction. Raised as an exclusion violation naming
# booking_token_no_overlap, which the engine turns into SlotUnavailable (token_overlap).
GUARD = """
CREATE FUNCTION bookings_token_guard(lo timestamptz, hi timestamptz, uids text[],
                                     countries text[]) RETURNS void AS $$
DECLARE
    wanted tstzrange := tstzrange(lo, hi, '[)');
BEGIN
    -- One probe per token with scalar parameters: PL/pgSQL keeps one generic plan for it,
    -- where a join with unnest(uids, countries) was planned again on every call.
    FOR i IN 1 .. coalesce(array_length(uids, 1), 0) LOOP
        IF EXISTS (
            SELECT 1 FROM bookings_bookingtoken t
             WHERE t.blocking
               AND t.uid = uids[i]
               AND t.country_code = countries[i]
               AND t.period && wanted
        ) THEN
            RAISE EXCEPTION 'A token of this booking already holds a booking at that time.'
                USING ERRCODE = 'exclusion_violation', CONSTRAINT = 'booking_token_no_overlap';
        END IF;
    END LOOP;
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
