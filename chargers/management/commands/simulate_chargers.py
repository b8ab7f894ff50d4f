"""Connect simulated charge points (the provisioned ones, by identity prefix) to the csms.

python manage.py simulate_chargers                       # every charge point in the database
python manage.py simulate_chargers --match AMS- --mode occupied
python manage.py simulate_chargers --tell AMS-CP01 mode offline
python manage.py simulate_chargers --tell AMS-CP01 start 04A1B2C3D4E5F6 1
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from chargers.simulator import MODES, SimulatedCharger, control_channel, handle_control
from locations.models import ChargePoint


class Command(BaseCommand):
    help = "Run simulated OCPP 1.6/2.0.1 chargers against the csms, or --tell running ones."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default=None, help="default: settings.CSMS_PUBLIC_URL")
        parser.add_argument("--match", default="", help="only identities starting with this")
        parser.add_argument("--mode", choices=MODES, default="accept")
        parser.add_argument("--password", default=None, help="Basic-auth password for all")
        parser.add_argument(
            "--passwords", default=None, metavar="FILE",
            help="JSON {charge point id: password} (seed_demo writes one for the demo)",
        )  # fmt: skip
        parser.add_argument("--count", "--limit", dest="limit", type=int, default=None,
                            help="connect at most this many (in identity order)")  # fmt: skip
        parser.add_argument("--concurrency", type=int, default=200, help="parallel connects")
        parser.add_argument("--meter-seconds", type=float, default=60,
                            help="a meter value of each running session this often")  # fmt: skip
        parser.add_argument(
            "--wait-for-csms", type=float, default=0, metavar="SECONDS",
            help="first wait this long at most for the csms to accept connections",
        )  # fmt: skip
        parser.add_argument(
            "--tell", nargs="+", metavar="ARG",
            help="CP|* mode MODE | CP start TOKEN [EVSE] | CP stop TRANSACTION [EVSE]",
        )  # fmt: skip

    def handle(self, *args, **options) -> None:
        if options["tell"]:
            self._tell(options["tell"])
            return
        qs = (
            ChargePoint.objects.filter(identity__startswith=options["match"])
            .annotate(n=Count("evses"))
            .order_by("identity")
        )
        if options["limit"]:
            qs = qs[: options["limit"]]
        url = options["url"] or settings.CSMS_PUBLIC_URL
        passwords = self._passwords(options["passwords"])
        sims = {
            cp.identity: SimulatedCharger(
                url,
                cp.identity,
                version=cp.ocpp_version,
                evses=max(cp.n, 1),
                password=passwords.get(cp.identity, options["password"]),
                mode=options["mode"],
                meter_seconds=options["meter_seconds"],
            )
            for cp in qs
        }
        if not sims:
            raise CommandError("No charge points match; provision some with add_charge_point.")
        if options["wait_for_csms"]:
            self._wait_for_csms(url, options["wait_for_csms"])
        self.stdout.write(f"simulator: {len(sims)} chargers -> {url} (mode {options['mode']})")
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._run(sims, options["concurrency"]))

    def _passwords(self, path: str | None) -> dict[str, str]:
        if not path:
            return {}
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            self.stderr.write(f"simulator: no passwords from {path} ({error})")
            return {}

    def _wait_for_csms(self, url: str, seconds: float) -> None:
        """Return once the csms accepts a TCP connection, so that no charger's first connect
        fails while the csms is still starting."""
        parts = urlsplit(url)
        address = (parts.hostname, parts.port or (443 if parts.scheme == "wss" else 80))
        deadline = time.monotonic() + seconds
        while True:
            try:
                socket.create_connection(address, timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"The csms at {url} did not accept connections within {seconds:.0f} s."
                    ) from None
                time.sleep(0.2)

    async def _run(self, sims: dict[str, SimulatedCharger], concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def first_connect(sim: SimulatedCharger) -> None:
            async with gate:  # avoid a boot storm of thousands of handshakes at once
                with contextlib.suppress(Exception):
                    await sim.connect()
            await sim.run_forever()

        tasks = [asyncio.create_task(first_connect(sim)) for sim in sims.values()]
        control = asyncio.create_task(self._control(sims))
        try:
            await asyncio.gather(*tasks, control)
        finally:
            for task in [*tasks, control]:
                task.cancel()

    async def _control(self, sims: dict[str, SimulatedCharger]) -> None:
        """Apply --tell messages; a Redis restart only pauses them (the chargers stay up)."""
        delay = 1.0
        while True:
            client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(control_channel(settings.CSMS_BUS_PREFIX))
                    delay = 1.0
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._apply(sims, message["data"])
            except redis.RedisError as error:
                self.stderr.write(f"simulator: control channel: {error}; retrying in {delay:.0f} s")
            finally:
                await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def _apply(self, sims: dict[str, SimulatedCharger], data: str) -> None:
        try:
            result = await handle_control(sims, json.loads(data))
            if result != "no such charger":
                self.stdout.write(f"simulator: {result}")
        except Exception as error:
            self.stderr.write(f"simulator: control message failed: {error}")

    def _tell(self, words: list[str]) -> None:
        if len(words) < 3:
            raise CommandError("--tell CP mode MODE | CP start TOKEN [EVSE] | CP stop TX [EVSE]")
        cp, action, value, *rest = words
        message = {"cp": cp, "action": action}
        if action == "mode":
            if value not in MODES:
                raise CommandError(f"mode must be one of {', '.join(MODES)}")
            message["mode"] = value
        elif action in ("start", "stop"):
            message["token" if action == "start" else "transaction"] = value
            message["evse"] = int(rest[0]) if rest else 1
        else:
            raise CommandError("action must be mode, start or stop")
        client = redis.Redis.from_url(settings.REDIS_URL)
        listeners = client.publish(control_channel(settings.CSMS_BUS_PREFIX), json.dumps(message))
        self.stdout.write(f"sent to {listeners} simulator process(es)")
