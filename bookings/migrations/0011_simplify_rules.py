"""Every booking rule declared on the models: the hand-made PL/pgSQL goes.

Dropped: the token guard function (0006; the token rule is now the exclusion constraint
bookingtoken_no_overlap), the rules stamp functions (0009), the location triggers (0007; the
booking's location is a foreign key again, and booking_location_is_evse_location a trigger
declared on the model), the token-copy triggers of 0005 (declared on the models now) and the
undeclared generated columns of 0010 (GeneratedField now). A fulfilled booking blocks its slot
until its end, so FULFILLED joins the blocking states of the exclusion constraint and index.
"""

import django.contrib.postgres.constraints
import django.contrib.postgres.indexes
import django.db.models.deletion
import pgtrigger.compiler
import pgtrigger.migrations
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0010_blocked_period_microseconds"),
        ("locations", "0003_location_ocpi_id_ci_unique"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunSQL(
            sql="""
            DROP TRIGGER IF EXISTS bookings_token_booking_update ON bookings_booking;
            DROP FUNCTION IF EXISTS bookings_booking_to_tokens();
            DROP TRIGGER IF EXISTS bookings_token_booking_insert ON bookings_bookingtoken;
            DROP FUNCTION IF EXISTS bookings_token_copy_booking();
            DROP FUNCTION IF EXISTS bookings_token_guard(timestamptz, timestamptz, text[], text[]);
            DROP TRIGGER IF EXISTS bookings_location_delete ON locations_location;
            DROP FUNCTION IF EXISTS bookings_location_delete_check();
            DROP TRIGGER IF EXISTS bookings_booking_location_update ON bookings_booking;
            DROP TRIGGER IF EXISTS bookings_booking_location_insert ON bookings_booking;
            DROP FUNCTION IF EXISTS bookings_booking_location_check();
            DROP FUNCTION IF EXISTS bookings_rules_check(bigint, bigint, text);
            DROP FUNCTION IF EXISTS bookings_rules_stamp(bigint, bigint);
            ALTER TABLE bookings_booking DROP COLUMN IF EXISTS blocked_from_us,
                                         DROP COLUMN IF EXISTS blocked_until_us;
            """,
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RemoveConstraint(
            model_name="booking",
            name="booking_no_overlap_per_evse",
        ),
        migrations.RemoveIndex(
            model_name="booking",
            name="booking_location_blocking_gist",
        ),
        migrations.RemoveIndex(
            model_name="bookingtoken",
            name="bookingtoken_blocking_gist",
        ),
        migrations.AddField(
            model_name="booking",
            name="blocked_from_us",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Func(
                    models.F("blocked_period"),
                    output_field=models.BigIntegerField(),
                    template="((extract(epoch FROM (lower(%(expressions)s) AT TIME ZONE 'UTC')) * 1000000)::bigint)",
                ),
                output_field=models.BigIntegerField(),
            ),
        ),
        migrations.AddField(
            model_name="booking",
            name="blocked_until_us",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Func(
                    models.F("blocked_period"),
                    output_field=models.BigIntegerField(),
                    template="((extract(epoch FROM (upper(%(expressions)s) AT TIME ZONE 'UTC')) * 1000000)::bigint)",
                ),
                output_field=models.BigIntegerField(),
            ),
        ),
        migrations.AlterField(
            model_name="booking",
            name="location",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="bookings",
                to="locations.location",
            ),
        ),
        migrations.AddIndex(
            model_name="booking",
            index=django.contrib.postgres.indexes.GistIndex(
                condition=models.Q(("status__in", ["PENDING", "RESERVED", "FULFILLED"])),
                fields=["location", "blocked_period"],
                name="booking_location_blocking_gist",
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="booking",
            trigger=pgtrigger.compiler.Trigger(
                name="booking_location_is_evse_location",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="\n                    IF NEW.evse_id IS NOT NULL AND NOT EXISTS (\n                        SELECT 1 FROM locations_evse e\n                          JOIN locations_chargepoint cp ON cp.id = e.charge_point_id\n                         WHERE e.id = NEW.evse_id AND cp.location_id = NEW.location_id\n                    ) THEN\n                        RAISE EXCEPTION 'Booking location % is not the location of its EVSE %.',\n                            NEW.location_id, NEW.evse_id\n                            USING ERRCODE = 'check_violation',\n                                  CONSTRAINT = 'booking_location_is_evse_location';\n                    END IF;\n                    RETURN NEW;\n                    ",
                    hash="22df092fd97b3c7642b32dbc9206bfdb62f4b9c7",
                    operation='INSERT OR UPDATE OF "location_id", "evse_id"',
                    pgid="pgtrigger_booking_location_is_evse_location_de820",
                    table="bookings_booking",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="booking",
            trigger=pgtrigger.compiler.Trigger(
                name="booking_to_tokens",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition='WHEN (OLD."period" IS DISTINCT FROM (NEW."period") OR OLD."status" IS DISTINCT FROM (NEW."status") OR OLD."terms" IS DISTINCT FROM (NEW."terms"))',
                    func="\n                    UPDATE bookings_bookingtoken SET period = NEW.period\n                     WHERE booking_id = NEW.id;\n                    RETURN NULL;\n                    ",
                    hash="3263d8408d94ae4139fe364ade0e5a2df265112f",
                    operation='UPDATE OF "period", "status", "terms"',
                    pgid="pgtrigger_booking_to_tokens_eff0f",
                    table="bookings_booking",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="bookingtoken",
            trigger=pgtrigger.compiler.Trigger(
                name="bookingtoken_copy_booking",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="\n                    SELECT b.period,\n                           b.status IN ('PENDING', 'RESERVED', 'FULFILLED')\n                           AND NOT coalesce((b.terms->>'overlapping_bookings_allowed')::boolean,\n                                            false)\n                      INTO NEW.period, NEW.blocking\n                      FROM bookings_booking b WHERE b.id = NEW.booking_id;\n                    RETURN NEW;\n                    ",
                    hash="c0865c06e329a1bcf5ac3b76c1be370488a0c770",
                    operation='INSERT OR UPDATE OF "booking_id", "period", "blocking"',
                    pgid="pgtrigger_bookingtoken_copy_booking_0072e",
                    table="bookings_bookingtoken",
                    when="BEFORE",
                ),
            ),
        ),
        # Recompute every token's copies with the new trigger (FULFILLED now blocks; terms that
        # allow overlapping bookings do not hold the token).
        migrations.RunSQL(
            sql="UPDATE bookings_bookingtoken SET booking_id = booking_id;",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AddConstraint(
            model_name="booking",
            constraint=django.contrib.postgres.constraints.ExclusionConstraint(
                condition=models.Q(("status__in", ["PENDING", "RESERVED", "FULFILLED"])),
                expressions=[("evse", "="), ("blocked_period", "&&")],
                name="booking_no_overlap_per_evse",
                violation_error_code="slot_unavailable",
                violation_error_message="That time is already booked on this EVSE.",
            ),
        ),
        migrations.AddConstraint(
            model_name="bookingtoken",
            constraint=django.contrib.postgres.constraints.ExclusionConstraint(
                condition=models.Q(("blocking", True)),
                expressions=[
                    ("country_code", "="),
                    ("party_id", "="),
                    ("uid", "="),
                    ("booking", "<>"),
                    ("period", "&&"),
                ],
                name="bookingtoken_no_overlap",
                violation_error_code="token_overlap",
                violation_error_message="This token already holds a booking at that time.",
            ),
        ),
    ]
