"""A message sent through the page's chat box shows as a travelling dot and a bubble (real Synapse)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_util import open_page, screenshot, start_controller, stop_controller, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.root, pytest.mark.synapse]


def test_sent_message_makes_a_dot_and_a_bubble(tmp_path: Path, browser: Any) -> None:
    ctl = start_controller(tmp_path, kind="synapse", extra=["--db", "sqlite"])
    try:
        a = ctl.add(150, 300, kind="synapse")
        b = ctl.add(400, 300, kind="synapse")  # 250 ms apart: the dot is on the wire for a while
        ctl.wait_up([a["id"], b["id"]], timeout=300)
        page = open_page(browser, ctl)
        page.locator(f"g.server[data-id='{a['id']}']").click()
        page.wait_for_selector("#selection form.chat:not([hidden])")
        page.fill("#selection form.chat input", "hello from the browser test")
        page.click("#selection form.chat button")
        page.wait_for_function(
            "() => document.querySelector('#selection form.chat input').value === ''"
            " || document.querySelector('#selection .error').textContent",
            timeout=120_000,
        )
        assert page.locator("#selection .error").text_content() == "", "the chat box reported an error"
        sent = wait_until(
            lambda: [
                e
                for e in ctl.get("/api/events")
                if e["type"] == "event_sent"
                and e.get("event_type") == "m.room.message"
                and e["server"] == a["id"]
            ],
            30,
            what="the controller to report the message as sent",
        )
        assert b["id"] in sent[-1]["destinations"], f"the message went nowhere: {sent[-1]}"
        page.wait_for_function("() => window.meshsim.animator.totalDots > 0", timeout=30_000)
        screenshot(page, "event_dot")
        page.wait_for_function(
            "() => window.meshsim.animator.totalBubbles > 0 && window.meshsim.animator.totalDots > 0",
            timeout=60_000,
        )
        # the receiving server's ring took the message's colour once it arrived there
        page.wait_for_function(f"() => window.meshsim.animator.rings.has({b['id']})", timeout=60_000)
        ring = page.evaluate(f"window.meshsim.animator.rings.get({b['id']})")
        assert ring and ring.startswith("hsl(")
        screenshot(page, "event_bubble")
        assert not page.meshsim_errors
    finally:
        stop_controller(ctl)
