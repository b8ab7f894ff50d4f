from django.db import migrations

# The stamp of what a booking decision reads about a location and one of its EVSEs, and the
# check that a booking's write runs first when it was decided on rows read earlier
# (bookings/rawsql.py: a process keeps the location and EVSE rows of recent BookingRequests).
#
# The stamp lists every such row's id, xmin (the transaction that wrote that version of the
# row) and ctid (where that version is stored): any INSERT, UPDATE or DELETE of one of them
# changes the stamp. xmin is what PostgreSQL drivers use as a row version for optimistic
# concurrency; ctid tells apart two versions written by one transaction (a row updated in the
# transaction that read it: each version is a new tuple in a new place). Row locks, as the
# foreign key checks of new bookings take on their EVSE, change neither. The tables are
# the ones locations.selectors reads for a request: the location, its policy, regular hours
# and exceptional periods; the EVSE, its charge point, its policy and its connectors.
STAMP = """
CREATE FUNCTION bookings_rules_stamp(p_location bigint, p_evse bigint) RETURNS text AS $$
DECLARE
    stamp text;
BEGIN
    -- '' where a part has no rows: the parts keep their places in the stamp.
    SELECT concat_ws('|',
        coalesce((SELECT l.xmin::text || l.ctid::text FROM locations_location l WHERE l.id = p_location), ''),
        coalesce((SELECT string_agg(p.id::text || ':' || p.xmin::text || p.ctid::text, ',' ORDER BY p.id)
                    FROM locations_bookingpolicy p WHERE p.location_id = p_location), ''),
        coalesce((SELECT string_agg(h.id::text || ':' || h.xmin::text || h.ctid::text, ',' ORDER BY h.id)
                    FROM locations_regularhours h WHERE h.location_id = p_location), ''),
        coalesce((SELECT string_agg(x.id::text || ':' || x.xmin::text || x.ctid::text, ',' ORDER BY x.id)
                    FROM locations_exceptionalperiod x WHERE x.location_id = p_location), ''),
        coalesce((SELECT e.xmin::text || e.ctid::text || ':' || cp.id::text || ':' || cp.xmin::text || cp.ctid::text
                    FROM locations_evse e JOIN locations_chargepoint cp ON cp.id = e.charge_point_id
                   WHERE e.id = p_evse), ''),
        coalesce((SELECT string_agg(p.id::text || ':' || p.xmin::text || p.ctid::text, ',' ORDER BY p.id)
                    FROM locations_bookingpolicy p WHERE p.evse_id = p_evse), ''),
        coalesce((SELECT string_agg(c.id::text || ':' || c.xmin::text || c.ctid::text, ',' ORDER BY c.id)
                    FROM locations_connector c WHERE c.evse_id = p_evse), '')
    ) INTO stamp;
    RETURN stamp;
END;
$$ LANGUAGE plpgsql STABLE;

CREATE FUNCTION bookings_rules_check(p_location bigint, p_evse bigint, p_stamp text)
RETURNS void AS $$
BEGIN
    IF bookings_rules_stamp(p_location, p_evse) IS DISTINCT FROM p_stamp THEN
        RAISE EXCEPTION 'The rules of this location or EVSE changed since they were read.'
            USING ERRCODE = 'serialization_failure', CONSTRAINT = 'bookings_rules_stamp';
    END IF;
END;
$$ LANGUAGE plpgsql STABLE;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0008_token_indexes"),
        ("locations", "0003_location_ocpi_id_ci_unique"),
    ]

    operations = [
        migrations.RunSQL(
            sql=STAMP,
            reverse_sql=(
                "DROP FUNCTION bookings_rules_check(bigint, bigint, text);"
                " DROP FUNCTION bookings_rules_stamp(bigint, bigint);"
            ),
        ),
    ]
