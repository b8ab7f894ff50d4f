"""The insights page in a real browser, on the demo data `make run` seeds (30 days of history):
reached from the day view, switched between 7 and 30 days, readable at desk, tablet and phone
widths, its figures also there as a table."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def demo():
    call_command("seed_demo", stdout=io.StringIO())


def log_in_as_demo_staff(page: Page) -> None:
    page.goto(page.base_url + "/")
    page.get_by_label("Username").fill("staff")
    page.get_by_label("Password").fill("staff-demo")
    page.get_by_role("button", name="Log in").click()


def test_insights_from_the_day_view_at_every_width(page: Page, demo, screenshot):
    log_in_as_demo_staff(page)
    page.get_by_role("link", name="Amsterdam Centraal P+R", exact=True).click()
    page.get_by_role("link", name="Insights").click()
    expect(page.get_by_role("heading", name="Insights")).to_be_visible()
    heatmap = page.get_by_role("img", name="Booked share of each hour, by EVSE")
    expect(heatmap).to_be_visible()
    # Every EVSE has a row of 24 hours; the demo history booked some of them.
    assert page.locator("svg.heat rect").count() == 24 * page.locator("svg.heat text.evse").count()
    assert page.locator("svg.heat rect:not([fill='#eef2f6'])").count() > 20
    expect(page.locator(".kpi").first).to_contain_text("bookings made")
    expect(page.get_by_role("heading", name="Who books")).to_be_visible()
    expect(page.locator(".bars").first).to_contain_text("DE*XMS")
    screenshot(page, "insights", full_page=True)

    page.get_by_role("link", name="Last 30 days").click()
    expect(page.get_by_role("link", name="Last 30 days")).to_have_attribute("aria-current", "page")
    expect(page.locator("p.muted").first).to_contain_text("the last 30 whole days")
    page.get_by_text("The figures as a table").click()
    expect(page.locator("table.heat-table tbody tr").first).to_be_visible()

    for width in (1024, 390):
        page.set_viewport_size({"width": width, "height": 900})
        expect(heatmap).to_be_visible()
        # Nothing but the heatmap's own scroller is wider than the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, f"insights-{width}", full_page=True)
