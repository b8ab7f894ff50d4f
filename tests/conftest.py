"""Shared fixtures. The database and Redis are real: `make test` starts embedded servers or uses
DATABASE_URL / REDIS_URL."""

import pytest
from django.contrib.auth import get_user_model

# The csms stack (a real csms, Redis bus, simulated chargers) for every app's tests, and the
# charger fault tests' real processes (tests/faults).
pytest_plugins = ["tests.chargers.fixtures", "tests.faults.chargers_processes"]


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        username="desk", password="desk-pass-123", is_staff=True, email="desk@example.com"
    )


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser(
        username="root", password="root-pass-123", email="root@example.com"
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's production cost is ~2 s per hash on a CI core; tests log users in all the time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Each test starts with no requests counted (partners.ratelimit): only the counters' keys go,
    never the rest of the test Redis."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.RATELIMIT_KEY_PREFIX
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session", autouse=True)
def _test_http_settings(django_test_environment):
    """Plain-HTTP settings and partners on this machine for the whole session, in force
    before any live server starts.

    Production defaults redirect to HTTPS and mark cookies secure; the test client and the
    live servers speak plain HTTP. A live server builds its middleware once, so this has to be
    session-wide rather than a per-test `settings` change. No collectstatic in tests: static
    files come from the finders instead of the hashed manifest.
    """
    from django.conf import settings
    from django.test.utils import override_settings

    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SECURE_HSTS_SECONDS=0,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
        ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver", "127.0.0.1", "localhost"],
        # The test partners (pytest-httpserver, tests/ocpi/partner.py) listen on 127.0.0.1.
        OUTBOUND_ALLOW_PRIVATE_URLS=True,
        STORAGES={
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        yield
