import django.db.models.deletion
from django.db import migrations, models

# What the foreign key bookings_booking.location_id -> locations_location guaranteed, without
# the row lock every booking at a location took on that location's row (see Booking.location).
TRIGGERS = """
CREATE FUNCTION bookings_booking_location_check() RETURNS trigger AS $$
BEGIN
    IF NEW.evse_id IS NOT NULL THEN
        -- The EVSE's foreign key locks the EVSE at commit; its charge point's and that charge
        -- point's location's keys keep the rest of the chain from being deleted.
        PERFORM 1 FROM locations_evse e
          JOIN locations_chargepoint cp ON cp.id = e.charge_point_id
         WHERE e.id = NEW.evse_id AND cp.location_id = NEW.location_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'Booking location % is not the location of its EVSE %.',
                NEW.location_id, NEW.evse_id
                USING ERRCODE = 'foreign_key_violation',
                      CONSTRAINT = 'booking_location_is_evse_location';
        END IF;
    ELSE
        -- No EVSE (a refused request): lock the location as the foreign key did.
        PERFORM 1 FROM locations_location WHERE id = NEW.location_id FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'There is no location %.', NEW.location_id
                USING ERRCODE = 'foreign_key_violation',
                      CONSTRAINT = 'booking_location_exists';
        END IF;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER bookings_booking_location_insert
    BEFORE INSERT ON bookings_booking
    FOR EACH ROW EXECUTE FUNCTION bookings_booking_location_check();
CREATE TRIGGER bookings_booking_location_update
    BEFORE UPDATE OF location_id, evse_id ON bookings_booking
    FOR EACH ROW
    WHEN (OLD.location_id IS DISTINCT FROM NEW.location_id
          OR OLD.evse_id IS DISTINCT FROM NEW.evse_id)
    EXECUTE FUNCTION bookings_booking_location_check();

CREATE FUNCTION bookings_location_delete_check() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM bookings_booking WHERE location_id = OLD.id) THEN
        RAISE EXCEPTION 'Location % still has bookings.', OLD.id
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'booking_location_exists';
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER bookings_location_delete
    BEFORE DELETE ON locations_location
    FOR EACH ROW EXECUTE FUNCTION bookings_location_delete_check();
"""

DROP_TRIGGERS = """
DROP TRIGGER bookings_location_delete ON locations_location;
DROP FUNCTION bookings_location_delete_check();
DROP TRIGGER bookings_booking_location_update ON bookings_booking;
DROP TRIGGER bookings_booking_location_insert ON bookings_booking;
DROP FUNCTION bookings_booking_location_check();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0006_token_guard"),
        ("locations", "0002_charge_point_station_down_at"),
    ]

    operations = [
        migrations.AlterField(
            model_name="booking",
            name="location",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="bookings",
                to="locations.location",
            ),
        ),
        migrations.RunSQL(sql=TRIGGERS, reverse_sql=DROP_TRIGGERS),
    ]
