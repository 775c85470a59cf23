//! The user's path through real browsers on a cluster: every test starts a `redis-server` of
//! its own and two `kokuban` nodes in cluster mode on it (sharing one secret, so a room's links
//! work on both), and puts the two tabs of a room on different nodes: Ada's on node A, the
//! other tab on node B, checked on each node's member gauge. What one tab does can only reach
//! the other through Redis, as behind a load balancer. Strokes drawn with pointer actions in
//! one tab appear on the other tab's canvas (checked on its pixels), undo and redo there
//! remove and restore them, a view-only tab cannot draw, and a tab whose connection to its
//! node was cut catches up on what was drawn meanwhile and delivers what it drew offline.
//! Exactly once, as a user sees it: a stroke drawn while Redis is stopped ends whole on both
//! tabs (or nowhere, and its author is told), and a stroke drawn while the tab's node is down
//! is sent by the tab reopened after the first one was closed.
//! On a Redis Cluster, strokes cross nodes the same, and keep crossing after the master of
//! the room's slot is killed and its replica takes over.
//! Screenshots of the end states are named `cluster-…`.

mod common;

use std::time::{Duration, Instant};

use common::{Browser, Cluster, Driver, Proxy, TIMEOUT, prerequisites, wave};
use serde_json::{Value, json};

/// The number of points of each stroke a tab shows.
const POINTS: &str = "return Array.from(window.kokuban.strokePoints());";

const W: u32 = 1000;
const H: u32 = 860;
/// The zoom a tab shows, and whether it is `arguments[0]`.
const ZOOM: &str = "return document.querySelector('[aria-label=\"Zoom to 100%\"]').textContent;";
const AT_ZOOM: &str =
    "return document.querySelector('[aria-label=\"Zoom to 100%\"]').textContent === arguments[0];";

/// Presses the zoom button labelled `button` on `tab` and waits until the zoom shown changes
/// (a click is handled, and the label redrawn, a frame or more later): the new zoom.
async fn zoomed(tab: &Browser, button: &str) -> Value {
    let before = tab.js(ZOOM, json!([])).await;
    tab.press(&format!("[aria-label='{button}']")).await;
    tab.wait_for(
        &format!("the zoom to change after {button}"),
        &format!("{} !== arguments[0];", ZOOM.trim_end_matches(';')),
        json!([before]),
    )
    .await;
    tab.js(ZOOM, json!([])).await
}

/// A tab editing a new room through node A and a view-only tab of it through node B.
async fn editor_on_a_viewer_on_b(cluster: &Cluster, driver: &Driver) -> (Browser, Browser) {
    cluster.editor_on_a_viewer_on_b(driver, (W, H)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stroke_on_one_node_appears_on_a_tab_of_the_other_and_undo_removes_it() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let (edit, _) = cluster.a.create_room().await;
    let driver = Driver::start().await;
    let (ada, bob) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{edit}", cluster.b.url()),
        )
        .await;

    let area = (300, 250, 700, 350);
    assert_eq!(bob.ink(area.0, area.1, area.2, area.3).await, 0);
    ada.draw(&wave(320, 680, 300)).await;
    ada.wait_ink("Ada's own stroke", area, 200).await;
    bob.wait_ink("Ada's stroke on Bob's canvas on the other node", area, 200)
        .await;
    bob.screenshot("cluster-stroke-on-other-node").await;

    ada.ctrl("z").await;
    bob.wait_ink("the undone stroke gone from Bob's canvas", area, 0)
        .await;
    ada.wait_ink("the undone stroke gone from Ada's canvas", area, 0)
        .await;
    bob.screenshot("cluster-undo-on-other-node").await;

    // Redo brings it back for both.
    ada.ctrl("y").await;
    bob.wait_ink("the redone stroke on Bob's canvas", area, 200)
        .await;
    ada.wait_ink("the redone stroke on Ada's canvas", area, 200)
        .await;
    bob.screenshot("cluster-redo-on-other-node").await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_only_tab_on_the_other_node_sees_the_board_but_cannot_draw() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    // Created on node B this time: Ada's edit link must work on node A.
    let (edit, view) = cluster.b.create_room().await;
    let driver = Driver::start().await;
    let (ada, viewer) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{view}", cluster.b.url()),
        )
        .await;

    // No drawing tools for a viewer: only the hand and the laser pointer.
    assert_eq!(viewer.count("[data-tool]").await, 2);
    assert_eq!(viewer.count("[data-tool=hand], [data-tool=laser]").await, 2);
    assert_eq!(ada.count("[data-tool]").await, 11);

    // Ada's ink reaches the viewer live.
    let top = (300, 150, 700, 250);
    ada.draw(&wave(320, 680, 200)).await;
    viewer
        .wait_ink("Ada's stroke on the viewer's canvas", top, 200)
        .await;

    // The viewer's drag draws nothing anywhere (it pans the view, so compare stroke counts
    // and the editor's canvas).
    let bottom = (300, 370, 700, 470);
    viewer.draw(&wave(320, 680, 420)).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let count = "return window.kokuban.strokeCount();";
    assert_eq!(viewer.js(count, json!([])).await, json!(1));
    assert_eq!(ada.js(count, json!([])).await, json!(1));
    assert_eq!(ada.ink(bottom.0, bottom.1, bottom.2, bottom.3).await, 0);
    viewer.screenshot("cluster-view-only-on-other-node").await;
    ada.quit().await;
    viewer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_laser_on_one_node_shows_on_the_other_and_fades_leaving_the_board_as_it_was() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, viewer) = editor_on_a_viewer_on_b(&cluster, &driver).await;
    ada.draw(&wave(320, 680, 200)).await;
    let count = "return window.kokuban.strokeCount();";
    viewer
        .wait_for(
            "Ada's stroke on the viewer's tab",
            "return window.kokuban.strokeCount() === 1;",
            json!([]),
        )
        .await;
    let laser = "return window.kokuban.laserPoints();";
    assert_eq!(ada.js(laser, json!([])).await, json!(0));

    // The viewer picks the laser by its name and points with it on node B.
    viewer.press("[aria-label='Laser pointer']").await;
    viewer.draw_paced(&wave(320, 680, 420), 16).await;
    ada.wait_for(
        "the viewer's laser trail on Ada's tab on node A",
        "return window.kokuban.laserPoints() > 0;",
        json!([]),
    )
    .await;
    ada.screenshot("cluster-laser-on-other-node").await;
    // Gone within about a second of the last point, on both tabs.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(ada.js(laser, json!([])).await, json!(0));
    assert_eq!(viewer.js(laser, json!([])).await, json!(0));
    // The board is as it was: one stroke on both tabs, nothing under the trail.
    assert_eq!(ada.js(count, json!([])).await, json!(1));
    assert_eq!(viewer.js(count, json!([])).await, json!(1));
    assert_eq!(ada.ink(300, 370, 700, 470).await, 0);
    ada.quit().await;
    viewer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_presenter_on_the_other_node_asks_everyone_to_follow_and_each_may_decline() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, presenter) = editor_on_a_viewer_on_b(&cluster, &driver).await;
    let asked = "return document.querySelector('.badge.asked')?.textContent ?? null;";
    let shown = "return !!document.querySelector('.badge.asked');";
    // The presenter (view-only, on node B) zooms in and asks from the menu.
    zoomed(&presenter, "Zoom in").await;
    let presenter_zoom = zoomed(&presenter, "Zoom in").await;
    let ask = async |tab: &Browser| tab.choose_from_menu("Ask everyone to follow me").await;
    ask(&presenter).await;
    ada.wait_for("the ask shown", shown, json!([])).await;
    let text = ada.js(asked, json!([])).await;
    assert!(
        text.as_str()
            .is_some_and(|t| t.contains("asks everyone to follow")),
        "{text}"
    );
    assert_eq!(
        ada.js(ZOOM, json!([])).await,
        json!("100%"),
        "nobody follows unasked"
    );
    ada.screenshot("cluster-asked-to-follow").await;

    // Ada follows: she sees the presenter's zoom, and goes along with it.
    ada.press("[aria-label$=' as asked']").await;
    ada.wait_for(
        "Ada at the presenter's zoom",
        AT_ZOOM,
        json!([presenter_zoom]),
    )
    .await;
    let presenter_zoom = zoomed(&presenter, "Zoom out").await;
    ada.wait_for("Ada along with it", AT_ZOOM, json!([presenter_zoom]))
        .await;
    assert_eq!(ada.js(asked, json!([])).await, json!(null));

    // Ada stops following (Esc); asked again, she declines and stays where she is.
    ada.type_keys("\u{E00C}").await;
    ada.wait_for(
        "following stopped",
        "return !document.querySelector('.badge.following');",
        json!([]),
    )
    .await;
    ask(&presenter).await;
    ada.wait_for("asked again", shown, json!([])).await;
    ada.press("[aria-label^='Decline to follow ']").await;
    ada.wait_for(
        "the ask gone",
        "return !document.querySelector('.badge.asked');",
        json!([]),
    )
    .await;
    zoomed(&presenter, "Zoom in").await;
    // A third ask right away is not shown: a declined presenter cannot nag.
    ask(&presenter).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ada.js(asked, json!([])).await, json!(null));
    assert_eq!(ada.js(ZOOM, json!([])).await, presenter_zoom, "not along");
    ada.quit().await;
    presenter.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_member_on_the_other_node_shows_their_zoom_until_escape() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, viewer) = editor_on_a_viewer_on_b(&cluster, &driver).await;
    let badge = "return document.querySelector('.badge.following')?.textContent ?? null;";
    zoomed(&ada, "Zoom in").await;
    let ada_zoom = zoomed(&ada, "Zoom in").await;
    assert_ne!(ada_zoom, json!("100%"));
    assert_eq!(viewer.js(ZOOM, json!([])).await, json!("100%"));

    // The viewer follows Ada (her avatar is the only "Follow …" one it shows).
    assert_eq!(viewer.count("[aria-label^='Follow ']").await, 1);
    viewer.press("[aria-label^='Follow ']").await;
    viewer
        .wait_for("the viewer at Ada's zoom", AT_ZOOM, json!([ada_zoom]))
        .await;
    let text = viewer.js(badge, json!([])).await;
    let text = text.as_str().expect("a following badge");
    assert!(
        text.starts_with("Following ") && text.ends_with(" — Esc to stop"),
        "{text}"
    );
    viewer.screenshot("cluster-following").await;

    // Ada zooms out: the viewer goes along.
    let ada_zoom = zoomed(&ada, "Zoom out").await;
    viewer
        .wait_for("the viewer at Ada's new zoom", AT_ZOOM, json!([ada_zoom]))
        .await;

    // Escape stops following: the badge goes, and Ada's next zoom stays hers.
    viewer.type_keys("\u{E00C}").await;
    viewer
        .wait_for(
            "the badge gone",
            "return !document.querySelector('.badge.following');",
            json!([]),
        )
        .await;
    let before = viewer.js(ZOOM, json!([])).await;
    zoomed(&ada, "Zoom in").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(viewer.js(ZOOM, json!([])).await, before);
    ada.quit().await;
    viewer.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_that_lost_its_node_catches_up_when_it_returns() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    // Bob's path to node B goes through a proxy the test can unplug; Ada's to node A is direct.
    let proxy = Proxy::start(cluster.b.addr).await;
    let (edit, _) = cluster.a.create_room().await;
    let driver = Driver::start().await;
    let (ada, bob) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{edit}", proxy.url()),
        )
        .await;

    proxy.unplug();
    bob.wait_for(
        "Bob to notice the lost connection",
        "const s = document.getElementById('status'); return !!s && s.dataset.status !== 'connected';",
        json!([]),
    )
    .await;
    // Node B lost him too: whatever he sees later has to come through the reconnect.
    cluster.b.wait_members(0).await;

    // Meanwhile Ada draws at the top, and Bob, offline, at the bottom.
    let top = (300, 150, 700, 250);
    let bottom = (300, 370, 700, 470);
    ada.draw(&wave(320, 680, 200)).await;
    bob.draw(&wave(320, 680, 420)).await;
    ada.wait_ink("Ada's stroke", top, 200).await;
    bob.wait_ink("Bob's offline stroke under his pen", bottom, 200)
        .await;
    assert_eq!(bob.ink(top.0, top.1, top.2, top.3).await, 0);
    assert_eq!(ada.ink(bottom.0, bottom.1, bottom.2, bottom.3).await, 0);
    bob.screenshot("cluster-offline").await;

    proxy.plug();
    bob.wait_status("connected").await;
    cluster.b.wait_members(1).await;
    bob.wait_ink("Ada's stroke on Bob's canvas after the reconnect", top, 200)
        .await;
    ada.wait_ink("Bob's offline stroke on Ada's canvas", bottom, 200)
        .await;
    bob.screenshot("cluster-reconnected-node-b").await;
    ada.screenshot("cluster-reconnected-node-a").await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_typed_on_one_node_is_edited_and_the_edit_undone_on_the_other() {
    const ENTER: &str = "\u{E007}";
    const BACKSPACE: &str = "\u{E003}";
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let (edit, _) = cluster.a.create_room().await;
    let driver = Driver::start().await;
    let (ada, bob) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{edit}", cluster.b.url()),
        )
        .await;
    let count = "return window.kokuban.strokeCount();";

    // Ada places a text with the text tool: a click opens the editor, Enter commits.
    let area = (280, 250, 760, 350);
    ada.press("[data-tool=text]").await;
    ada.click(300, 280, 1).await;
    ada.wait_for(
        "the text editor to open",
        "return document.querySelectorAll('.text-editor').length === 1;",
        json!([]),
    )
    .await;
    ada.type_keys(&format!("Kokuban whiteboard{ENTER}")).await;
    bob.wait_ink("Ada's text on Bob's canvas", area, 150).await;
    // Let the last pixels of the text arrive before counting them.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let long = bob.ink(area.0, area.1, area.2, area.3).await;
    assert_eq!(bob.js(count, json!([])).await, json!(1));
    bob.screenshot("cluster-text-typed").await;

    // Ada double-clicks her text with the select tool and shortens it.
    ada.press("[data-tool=select]").await;
    ada.click(310, 290, 2).await;
    ada.wait_for(
        "the editor to open on the text",
        "const e = document.querySelector('.text-editor'); return !!e && e.value === 'Kokuban whiteboard';",
        json!([]),
    )
    .await;
    ada.type_keys(&format!("{}{ENTER}", BACKSPACE.repeat(11)))
        .await;
    bob.wait_for(
        "the shorter text on Bob's canvas",
        "return window.kokuban.strokeCount() === 1;",
        json!([]),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let short = loop {
        let n = bob.ink(area.0, area.1, area.2, area.3).await;
        if n > 0 && n < long * 3 / 4 {
            break n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the edit did not reach Bob: {n} ink pixels, {long} before"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    bob.screenshot("cluster-text-edited").await;

    // One undo brings the whole text back, for Bob too.
    ada.ctrl("z").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = bob.ink(area.0, area.1, area.2, area.3).await;
        if n > short && n >= long * 9 / 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the undo did not reach Bob: {n} ink pixels, {long} for the whole text"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(bob.js(count, json!([])).await, json!(1));
    bob.screenshot("cluster-text-edit-undone").await;
    ada.quit().await;
    bob.quit().await;
}

/// Records the text of every toast the page shows into `window.toastsSeen`, however briefly
/// it stays.
const RECORD_TOASTS: &str = r#"
window.toastsSeen = [];
new MutationObserver(() => {
  for (const t of document.querySelectorAll('.toast')) {
    if (!window.toastsSeen.includes(t.textContent)) window.toastsSeen.push(t.textContent);
  }
}).observe(document.body, {childList: true, subtree: true});
return true;
"#;

/// A long stroke across the board, `n + 1` points.
fn long_stroke(y: i64, n: i64) -> Vec<(i64, i64)> {
    (0..=n)
        .map(|i| {
            let x = 150 + 700 * i / n;
            let dy = ((i as f64) / 4.0).sin() * 40.0;
            (x, y + dy as i64)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_mid_stroke_leaves_both_tabs_with_the_same_whole_stroke() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let (edit, _) = cluster.a.create_room().await;
    let driver = Driver::start().await;
    let (ada, bob) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{edit}", cluster.b.url()),
        )
        .await;
    ada.js(RECORD_TOASTS, json!([])).await;

    // Ada draws for about 6 s; Redis stops after 1 s, and comes back once she has lifted
    // the pen and her tab says it cannot save.
    let stroke = long_stroke(400, 150);
    let outage = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.one_redis().pause();
    };
    tokio::join!(ada.draw_paced(&stroke, 40), outage);
    let drawn = ada.js(POINTS, json!([])).await;
    ada.wait_status("read-only").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.one_redis().resume();

    // Everything settles: Ada's tab has nothing left to send, and both tabs agree.
    ada.wait_for(
        "Ada's changes to be settled",
        "return window.kokuban.outstanding() === 0;",
        json!([]),
    )
    .await;
    ada.wait_status("connected").await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (a, b) = (
            ada.js(POINTS, json!([])).await,
            bob.js(POINTS, json!([])).await,
        );
        if a == b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tabs disagree: Ada {a}, Bob {b}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = ada.js(POINTS, json!([])).await;
    let told: Vec<String> =
        serde_json::from_value(ada.js("return window.toastsSeen;", json!([])).await).unwrap();
    if kept == drawn {
        // The whole stroke, everywhere.
        assert_eq!(kept.as_array().map(Vec::len), Some(1), "{kept}");
    } else {
        // Or nowhere, and Ada was told.
        assert_eq!(
            kept,
            json!([]),
            "a different stroke than drawn ({drawn}) survived"
        );
        assert!(
            told.iter().any(|t| t.contains("not on the board")),
            "Ada was not told her stroke was dropped: {told:?}"
        );
    }
    println!("drawn {drawn}, kept {kept}, toasts {told:?}");
    bob.screenshot("cluster-redis-paused-mid-stroke").await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stroke_drawn_while_the_node_was_down_is_sent_by_the_tab_reopened_after_it_returned() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let mut cluster = Cluster::start().await;
    let (edit, _) = cluster.a.create_room().await;
    let driver = Driver::start().await;
    let (ada, bob) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{edit}", cluster.b.url()),
        )
        .await;

    // Node B goes down; Bob draws anyway.
    cluster.b.stop().await;
    bob.wait_for(
        "Bob to notice his node is gone",
        "const s = document.getElementById('status'); return !!s && s.dataset.status !== 'connected';",
        json!([]),
    )
    .await;
    let bottom = (300, 370, 700, 470);
    bob.draw(&wave(320, 680, 420)).await;
    bob.wait_ink("Bob's stroke under his pen", bottom, 200)
        .await;
    assert!(
        bob.js("return window.kokuban.outstanding();", json!([]))
            .await
            .as_u64()
            > Some(0)
    );

    // He closes the tab before the node is back (the page asks first; he leaves).
    let room_tab = bob.current_tab().await;
    bob.new_tab().await;
    bob.switch_to(&room_tab).await;
    bob.close_tab().await;

    // The node returns; Bob opens the board again.
    cluster.b.start_again().await;
    bob.goto(&format!("{}{edit}", cluster.b.url())).await;
    bob.wait_status("connected").await;
    ada.wait_ink(
        "Bob's stroke on Ada's canvas on the other node",
        bottom,
        200,
    )
    .await;
    bob.wait_ink("Bob's stroke in his reopened tab", bottom, 200)
        .await;
    bob.wait_for(
        "the reopened tab to have sent it",
        "return window.kokuban.outstanding() === 0;",
        json!([]),
    )
    .await;
    let count = "return window.kokuban.strokeCount();";
    assert_eq!(ada.js(count, json!([])).await, json!(1));
    assert_eq!(bob.js(count, json!([])).await, json!(1));
    ada.screenshot("cluster-stroke-from-a-reopened-tab").await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_strokes_cross_nodes_live_and_after_the_rooms_master_fails_over() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let mut cluster = Cluster::on_redis_cluster().await;
    let (edit, _) = cluster.a.create_room().await;
    let driver = Driver::start().await;
    let (ada, bob) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{edit}", cluster.b.url()),
        )
        .await;
    let first = (300, 250, 700, 350);
    ada.draw(&wave(320, 680, 300)).await;
    bob.wait_ink("Ada's stroke on Bob's canvas on the other node", first, 200)
        .await;

    // The master serving the room's slot dies; its replica takes over after the cluster's
    // node timeout. Ada draws meanwhile: her stroke reaches Bob once the room is served again.
    let room = edit
        .trim_start_matches("/r/")
        .split('#')
        .next()
        .expect("a room path")
        .to_owned();
    let redis = cluster.redis_cluster();
    let master = redis.master_of(&format!("kokuban:{{{room}}}:seq")).await;
    redis.kill(master);
    let second = (300, 450, 700, 550);
    ada.draw(&wave(320, 680, 500)).await;
    cluster.redis_cluster().wait_failover().await;
    bob.wait_ink(
        "the stroke drawn during the failover on Bob's canvas",
        second,
        200,
    )
    .await;
    ada.wait_ink("Ada's stroke drawn during the failover", second, 200)
        .await;
    ada.wait_for(
        "Ada's changes to be settled",
        "return window.kokuban.outstanding() === 0;",
        json!([]),
    )
    .await;
    let (a_points, b_points) = (
        ada.js(POINTS, json!([])).await,
        bob.js(POINTS, json!([])).await,
    );
    assert_eq!(a_points, b_points, "both tabs show the same strokes");
    bob.screenshot("cluster-redis-cluster-failover").await;
    ada.quit().await;
    bob.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_set_on_one_node_names_the_board_for_everyone_and_in_their_recent_boards() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (edit, view) = cluster.a.create_room().await;
    let (ada, bob) = cluster
        .two_tabs(
            &driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{view}", cluster.b.url()),
        )
        .await;
    let field = "input[aria-label='Board title']";
    // Ada, an editor on node A, names the board.
    ada.click_on(field).await;
    ada.type_keys("Launch plan\u{E007}").await;
    // Bob, view-only on node B, sees the title, as text he cannot change, and in his tab's name.
    let titled = "return document.querySelector('.title')?.textContent === arguments[0]
        && document.title === arguments[0] + ' — Kokuban';";
    bob.wait_for("the title on node B", titled, json!(["Launch plan"]))
        .await;
    assert_eq!(
        bob.js(
            "return !!document.querySelector(arguments[0]);",
            json!([field])
        )
        .await,
        json!(false),
        "a viewer has no title field"
    );
    bob.screenshot("cluster-board-title").await;

    // Typing and then Esc puts the title back, and changes nothing for anyone.
    ada.click_on(field).await;
    ada.type_keys(" (draft)\u{E00C}").await;
    let value = "return document.querySelector(arguments[0]).value === arguments[1];";
    ada.wait_for("the title put back", value, json!([field, "Launch plan"]))
        .await;

    // A late joiner on node B gets the title with the board.
    let carol = driver.browser(W, H).await;
    carol.goto(&format!("{}{edit}", cluster.b.url())).await;
    carol.wait_status("connected").await;
    carol
        .wait_for(
            "the title for a late joiner",
            value,
            json!([field, "Launch plan"]),
        )
        .await;
    let bob_sees = bob.js(
        "return document.querySelector('.title').textContent;",
        json!([]),
    );
    assert_eq!(bob_sees.await, json!("Launch plan"));

    // Bob's landing page names the board by its title.
    bob.goto(&format!("{}/", cluster.b.url())).await;
    bob.wait_for(
        "the board listed by its title",
        "return document.querySelector('.recent li a')?.textContent === arguments[0];",
        json!(["Launch plan"]),
    )
    .await;
}

/// Pixels of `#board` within the CSS rectangle `arguments[0..4]` that are clearly red
/// (the palette's red, `#e03131`); with `arguments[4]`, whether there are at least that many
/// (or, given 0, none).
const RED_PIXELS: &str = r#"
const [x0, y0, x1, y1, min] = arguments;
const c = document.getElementById('board');
const r = window.devicePixelRatio || 1;
const d = c.getContext('2d').getImageData(Math.round(x0 * r), Math.round(y0 * r),
  Math.round((x1 - x0) * r), Math.round((y1 - y0) * r)).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) {
  if (d[i] > 170 && d[i + 1] < 110 && d[i + 2] < 110) n++;
}
if (min === undefined) return n;
return min === 0 ? n === 0 : n >= min;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_restyled_on_one_node_changes_colour_and_width_on_the_other_and_undo_reverts_it()
 {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, bob) = editor_on_a_viewer_on_b(&cluster, &driver).await;
    let area = (250, 250, 750, 350);
    let rect = json!([area.0, area.1, area.2, area.3]);
    let with = |min: u64| json!([area.0, area.1, area.2, area.3, min]);
    ada.draw(&wave(300, 700, 300)).await;
    bob.wait_ink("Ada's stroke", area, 50).await;
    let thin = bob.ink(area.0, area.1, area.2, area.3).await;
    assert_eq!(bob.js(RED_PIXELS, rect).await, json!(0));

    // Ada selects everything and picks red, then the largest size.
    ada.ctrl("a").await;
    ada.wait_for(
        "the selection bar",
        "return !!document.querySelector('[aria-label=\"Selection\"]');",
        json!([]),
    )
    .await;
    ada.press("[aria-label='Ink colour: Red']").await;
    bob.wait_for("the stroke red on node B", RED_PIXELS, with(thin / 2))
        .await;
    ada.press("[aria-label='Stroke size XL']").await;
    bob.wait_for("the stroke wider on node B", RED_PIXELS, with(thin * 2))
        .await;
    bob.screenshot("cluster-restyled").await;

    // Undo takes the size back, then the colour, on both tabs.
    ada.press("[aria-label='Undo']").await;
    ada.press("[aria-label='Undo']").await;
    bob.wait_for("no red left on node B", RED_PIXELS, with(0))
        .await;
    let back = bob.ink(area.0, area.1, area.2, area.3).await;
    assert!(
        back < thin * 3 / 2,
        "the width back too: {back} ink pixels, {thin} before"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_on_one_node_is_undone_on_every_node_and_redone() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, bob) = editor_on_a_viewer_on_b(&cluster, &driver).await;
    let ([top, bottom], [first, second]) = ada.draw_two_strokes_seen_by(&bob).await;
    let drawn = (first, second);

    // Ada clears the board from the menu and confirms.
    ada.js("window.confirm = () => true;", json!([])).await;
    ada.choose_from_menu("Clear board").await;
    bob.wait_ink("the first stroke cleared", top, 0).await;
    bob.wait_ink("the second stroke cleared", bottom, 0).await;

    // Undo draws both again, for Bob on the other node too, as they were.
    ada.press("[aria-label='Undo']").await;
    bob.wait_ink("the first stroke back", top, drawn.0 * 9 / 10)
        .await;
    bob.wait_ink("the second stroke back", bottom, drawn.1 * 9 / 10)
        .await;
    bob.screenshot("cluster-clear-undone").await;
    // Redo clears them again.
    ada.press("[aria-label='Redo']").await;
    bob.wait_ink("cleared again", top, 0).await;
    bob.wait_ink("cleared again", bottom, 0).await;
}
