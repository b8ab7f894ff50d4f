from django.db import migrations, models

# One vocabulary for a booking's hold at its charger (chargers.models.ChargerReservation): a
# placement's states keep their values, so existing rows carry over as they are. The column
# widens to the vocabulary's longest value; the labels are the ones staff see on bookings.


class Migration(migrations.Migration):
    dependencies = [
        ("chargers", "0002_running_session_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="reservation",
            name="status",
            field=models.CharField(
                choices=[
                    ("SENDING", "Sending"),
                    ("HELD", "Held at charger"),
                    ("OCCUPIED", "Charger occupied"),
                    ("FAULTED", "Charger faulted"),
                    ("UNAVAILABLE", "Charger unavailable"),
                    ("REJECTED", "Charger rejected"),
                    ("OFFLINE", "Charger offline"),
                    ("CANCEL_DUE", "To cancel"),
                    ("CANCELED", "Canceled"),
                    ("EXPIRED", "Expired at charger"),
                    ("REMOVED", "Removed at charger"),
                    ("USED", "Used by a session"),
                    ("DROPPED", "No longer wanted"),
                ],
                default="SENDING",
                max_length=16,
            ),
        ),
    ]
