from django.db import migrations, models

# Booking.charger_reservation takes its states from chargers' one vocabulary for a booking's
# hold (chargers.models.ChargerReservation). Every value a booking had is kept, so existing
# rows carry over as they are; only the choices' order changes, and nothing in the database.


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0011_simplify_rules"),
        ("chargers", "0003_hold_state"),
    ]

    operations = [
        migrations.AlterField(
            model_name="booking",
            name="charger_reservation",
            field=models.CharField(
                choices=[
                    ("NOT_SENT", "Not sent yet"),
                    ("NOT_SUPPORTED", "Not reservable"),
                    ("SENDING", "Sending"),
                    ("HELD", "Held at charger"),
                    ("OCCUPIED", "Charger occupied"),
                    ("FAULTED", "Charger faulted"),
                    ("UNAVAILABLE", "Charger unavailable"),
                    ("REJECTED", "Charger rejected"),
                    ("OFFLINE", "Charger offline"),
                    ("RELEASED", "Released"),
                ],
                default="NOT_SENT",
                max_length=16,
            ),
        ),
    ]
