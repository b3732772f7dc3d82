"""The page against a real controller: create, drag, link panel, defaults, several tabs in sync."""

from __future__ import annotations

from typing import Any

import pytest
from browser_util import Controller, canvas_origin, open_page, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.root]


def servers_by_id(ctl: Controller) -> dict[int, dict[str, Any]]:
    return {s["id"]: s for s in ctl.topology()["servers"]}


def drawn_position(page: Any, sid: int) -> tuple[float, float]:
    """Where the page draws server sid (model coordinates)."""
    return tuple(
        page.evaluate(f"(() => {{ const p = window.meshsim.canvas.position({sid}); return [p.x, p.y]; }})()")
    )


def page_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """(() => {
        const st = window.meshsim.store;
        return {
          servers: [...st.servers.values()].map(s => [s.id, s.x, s.y, s.state]).sort((a, b) => a[0] - b[0]),
          links: [...st.links.values()].map(l => [l.a, l.b, l.latency, l.bandwidth, [...(l.pinned || [])].sort(), l.cut])
                   .sort((p, q) => p[0] - q[0] || p[1] - q[1]),
          defaults: st.defaults,
        };
      })()"""
    )


def api_state(ctl: Controller) -> dict[str, Any]:
    t = ctl.topology()
    return {
        "servers": sorted([s["id"], s["x"], s["y"], s["state"]] for s in t["servers"]),
        "links": sorted(
            [lk["a"], lk["b"], lk["latency"], lk["bandwidth"], sorted(lk["pinned"]), lk["cut"]]
            for lk in t["links"]
        ),
        "defaults": t["defaults"],
    }


def test_click_creates_server(controller: Controller, browser: Any) -> None:
    page = open_page(browser, controller)
    page.select_option("#new-kind", "router")
    ox, oy = canvas_origin(page)
    page.mouse.click(ox + 300, oy + 220)
    # the placeholder is drawn at once, before the API answers
    page.wait_for_selector("g.server", timeout=2000)
    servers = wait_until(lambda: controller.topology()["servers"], 10, what="a server in the API")
    assert len(servers) == 1
    s = servers[0]
    assert (s["x"], s["y"]) == (300, 220)
    assert s["kind"] == "router"
    page.wait_for_selector(f"g.server[data-id='{s['id']}'][data-state='up']", timeout=15_000)
    assert page.locator("g.server.placeholder").count() == 0
    assert page.locator(f"g.server[data-id='{s['id']}'] text.server-label").text_content() == str(s["id"])
    screenshot(page, "click_creates_server")
    assert not page.meshsim_errors


def test_drag_moves_server_and_links_follow(controller: Controller, browser: Any) -> None:
    a = controller.add(200, 200)
    b = controller.add(330, 200)
    controller.wait_up([a["id"], b["id"]])
    page = open_page(browser, controller)
    key = f"{min(a['id'], b['id'])}-{max(a['id'], b['id'])}"
    page.wait_for_selector(f"g.link[data-key='{key}']")
    ox, oy = canvas_origin(page)
    page.mouse.move(ox + 200, oy + 200)
    page.mouse.down()
    page.mouse.move(ox + 250, oy + 250, steps=5)
    # mid-drag: the link's end follows the pointer before anything reaches the API
    line = page.locator(f"g.link[data-key='{key}'] line.line")
    assert float(line.get_attribute("x1")) == pytest.approx(250, abs=1)
    assert float(line.get_attribute("y1")) == pytest.approx(250, abs=1)
    page.mouse.move(ox + 260, oy + 320, steps=5)
    page.mouse.up()
    wait_until(
        lambda: (
            (servers_by_id(controller)[a["id"]]["x"], servers_by_id(controller)[a["id"]]["y"]) == (260, 320)
        ),
        10,
        what="the API to show the new position",
    )
    # the link's latency follows the distance (sqrt(70^2 + 120^2) ~ 138.9 ms at 100 %)
    link = wait_until(
        lambda: [lk for lk in controller.topology()["links"] if abs(lk["latency"] - 138.9) < 1.5],
        10,
        what="the moved link's latency",
    )
    assert link
    wait_until(lambda: drawn_position(page, a["id"]) == (260, 320), 5, what="page position")
    # a click without movement selects instead of moving
    page.mouse.click(ox + 260, oy + 320)
    page.wait_for_selector(f"g.server.selected[data-id='{a['id']}']")
    assert page.locator("#selection h2").text_content() == a["name"]
    assert (servers_by_id(controller)[a["id"]]["x"], servers_by_id(controller)[a["id"]]["y"]) == (260, 320)
    screenshot(page, "drag_moves_server")
    assert not page.meshsim_errors


def test_link_panel_pins_reach_the_api(controller: Controller, browser: Any) -> None:
    a = controller.add(200, 300)
    b = controller.add(420, 260)
    controller.wait_up([a["id"], b["id"]])
    lo, hi = sorted([a["id"], b["id"]])
    page = open_page(browser, controller)
    page.locator(f"g.link[data-key='{lo}-{hi}'] line.hit").click()
    page.wait_for_selector(f"g.link.selected[data-key='{lo}-{hi}']")
    stroke = page.eval_on_selector(
        f"g.link[data-key='{lo}-{hi}'] line.line", "e => getComputedStyle(e).stroke"
    )
    assert stroke == "rgb(240, 82, 79)"  # red
    panel = page.locator("#selection")
    assert "ms" in panel.locator(".pin-table").text_content()

    panel.locator("input[name='latency']").fill("42")
    panel.locator("button.pin[data-field='latency']").click()
    link = wait_until(
        lambda: (lk := controller.get(f"/api/links/{lo}/{hi}"))["latency"] == 42 and lk,
        10,
        what="pinned latency",
    )
    assert "latency" in link["pinned"]
    page.wait_for_function(
        "() => document.querySelector('#selection .pin-table').textContent.includes('42 ms')", timeout=5000
    )
    assert panel.locator(".pin-mark", has_text="pinned").count() == 1
    # the label on the canvas follows
    page.wait_for_function(
        f"() => document.querySelector(\"g.link[data-key='{lo}-{hi}'] text.link-label\").textContent.startsWith('42 ms')"
    )

    panel.locator("input[name='bandwidth']").fill("2M")
    panel.locator("button.pin[data-field='bandwidth']").click()
    wait_until(
        lambda: controller.get(f"/api/links/{lo}/{hi}")["bandwidth"] == 2_000_000, 10, what="pinned bandwidth"
    )
    screenshot(page, "link_panel_pinned")

    panel.locator("button.unpin[data-field='latency']").click()
    wait_until(lambda: "latency" not in controller.get(f"/api/links/{lo}/{hi}")["pinned"], 10, what="unpin")

    # a value that does not parse never reaches the API
    panel.locator("input[name='loss']").fill("lots")
    panel.locator("button.pin[data-field='loss']").click()
    assert "not a valid value" in panel.locator(".error").text_content()

    # cut: dashed on the canvas; heal brings it back
    panel.get_by_role("button", name="Cut link").click()
    page.wait_for_selector(f"g.link.cut[data-key='{lo}-{hi}']", timeout=10_000)
    assert controller.get(f"/api/links/{lo}/{hi}")["cut"] is True
    dash = page.eval_on_selector(
        f"g.link[data-key='{lo}-{hi}'] line.line", "e => getComputedStyle(e).strokeDasharray"
    )
    assert dash not in ("", "none")
    panel.get_by_role("button", name="Heal link").click()
    page.wait_for_selector(f"g.link[data-key='{lo}-{hi}']:not(.cut)", timeout=10_000)

    # move b out of range: the pair is no longer linked and a pin is refused with the API's 409 detail
    controller.put(f"/api/servers/{b['id']}", {"x": 1200, "y": 260})
    page.wait_for_function("() => document.querySelector('#selection').textContent.includes('not linked')")
    panel.locator("input[name='jitter']").fill("5")
    panel.locator("button.pin[data-field='jitter']").click()
    page.wait_for_function("() => document.querySelector('#selection .error').textContent.startsWith('409')")
    screenshot(page, "link_panel_409")
    assert not page.meshsim_errors


def test_defaults_panel_applies(controller: Controller, browser: Any) -> None:
    page = open_page(browser, controller)
    assert page.input_value("#def-bandwidth") == str(controller.get("/api/defaults")["bandwidth"])
    assert "milliseconds" in page.locator("label[for='def-jitter']").text_content()
    page.fill("#def-max_latency", "200")
    page.fill("#def-bandwidth", "1M")
    page.select_option("#def-cost", "bandwidth")
    page.uncheck("#def-decay")
    page.fill("#def-loss", "1.5")
    page.get_by_role("button", name="Apply").click()
    d = wait_until(
        lambda: (d := controller.get("/api/defaults"))["max_latency"] == 200 and d,
        10,
        what="defaults applied",
    )
    assert d["bandwidth"] == 1_000_000
    assert d["cost"] == "bandwidth"
    assert d["decay"] is False
    assert d["loss"] == 1.5
    screenshot(page, "defaults_applied")
    assert not page.meshsim_errors


def test_two_pages_stay_in_sync(controller: Controller, browser: Any) -> None:
    controller.add(150, 150)
    one = open_page(browser, controller)
    two = open_page(browser, controller)
    one.select_option("#new-kind", "router")
    ox, oy = canvas_origin(one)
    for x, y in [(300, 180), (260, 330), (480, 260)]:
        one.mouse.click(ox + x, oy + y)
    wait_until(lambda: len(controller.topology()["servers"]) == 4, 10, what="4 servers")
    controller.wait_up([s["id"] for s in controller.topology()["servers"]])
    # drag one in the first page
    one.mouse.move(ox + 300, oy + 180)
    one.mouse.down()
    one.mouse.move(ox + 360, oy + 120, steps=6)
    one.mouse.up()
    wait_until(lambda: any((s["x"], s["y"]) == (360, 120) for s in controller.topology()["servers"]), 10)
    lk = controller.topology()["links"][0]
    controller.put(f"/api/links/{lk['a']}/{lk['b']}", {"latency": 77})
    controller.put("/api/defaults", {"jitter": 3})

    def same() -> bool:
        want = api_state(controller)
        return page_state(one) == want and page_state(two) == want

    wait_until(same, 10, what="both pages to match the API")

    # a dropped socket reconnects and re-applies a fresh snapshot, including what changed meanwhile
    two.evaluate("window.meshsim.conn.ws.close()")
    controller.post(f"/api/links/{lk['a']}/{lk['b']}/cut")
    two.wait_for_selector("#conn[data-status='live']", timeout=15_000)
    wait_until(same, 10, what="the reconnected page to match the API")
    assert two.evaluate("window.meshsim.conn.reconnects") >= 1

    # remove through the first page's toolbar
    victim = controller.topology()["servers"][0]["id"]
    one.evaluate(f"window.meshsim.select({{type: 'server', id: {victim}}})")
    one.click("#btn-remove")
    wait_until(lambda: victim not in servers_by_id(controller), 10, what="server removed")
    wait_until(same, 10, what="both pages after the removal")
    screenshot(one, "two_pages_one")
    screenshot(two, "two_pages_two")

    # reset after confirming
    one.once("dialog", lambda d: d.accept())
    one.click("#btn-reset")
    wait_until(lambda: not controller.topology()["servers"], 20, what="reset")
    wait_until(lambda: page_state(two)["servers"] == [], 10, what="second page emptied")
    assert not one.meshsim_errors and not two.meshsim_errors


def test_page_shows_links_down_while_the_emulator_restarts(controller: Controller, browser: Any) -> None:
    import os
    import signal

    a, b = controller.add(150, 150), controller.add(300, 150)
    controller.wait_up([a["id"], b["id"]])
    page = open_page(browser, controller)
    page.wait_for_selector("g.link")
    # record every state the page's store goes through, so a short outage cannot slip past
    page.evaluate(
        "() => { window.__emu = []; window.meshsim.store.onState((k, m) => {"
        " if (k === 'emulator') window.__emu.push([m.state, document.getElementById('canvas')"
        ".classList.contains('links-down')]); }); }"
    )
    run = controller.get("/api/status")["run"]
    pid = int((controller.home / "runs" / run / "pids" / "linkemu").read_text())
    os.kill(pid, signal.SIGKILL)
    page.wait_for_function("() => window.__emu.length >= 2", timeout=15_000)
    assert page.evaluate("window.__emu") == [["down", True], ["up", False]]
    assert page.locator("#toasts").text_content().count("link emulator") >= 1
    screenshot(page, "emulator_restarted")
